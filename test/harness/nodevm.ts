/**
 * A node VM for tests: Debian's cloud kernel with cgroup v2 (the unified
 * hierarchy, every controller) and AppArmor, booted under qemu's software
 * emulation (KVM fails on this project's machines), from the image that
 * images/nodevm/build.ts makes.
 *
 * - Its root disk is a copy-on-write overlay of the cached image, thrown away at close.
 * - Its serial console goes to a file (`console()` reads it; the tail is in boot errors).
 * - Commands run inside through the agent on a virtio-serial port (`exec`).
 * - Files get in as read-only raw disks named by serial (`disks`); a tar file
 *   as a disk is read in the VM with `tar -xf ${diskDevice(NAME)}`.
 * No network device: the VM reaches nothing and nothing reaches it. qemu dies
 * with the process that started it.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { ensureNodeVm, type NodeVmImage } from "../../images/nodevm/build.js";

const run = promisify(execFile);

export const qemuBinary = "qemu-system-x86_64";

/** Why a node VM cannot start here, or undefined when it can. */
export async function nodeVmUnavailable(): Promise<string | undefined> {
  const found = await run("sh", ["-c", `command -v ${qemuBinary} && command -v qemu-img`]).then(
    () => true,
    () => false,
  );
  if (!found) return `${qemuBinary} or qemu-img is not installed (apt-get install qemu-system-x86 qemu-utils)`;
  return undefined;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface NodeVm {
  image: NodeVmImage;
  /** From spawning qemu to the agent answering (kernel, initramfs, systemd's early boot). */
  bootMs: number;
  /** Runs `sh -c command` as root in the VM. */
  exec(command: string, options?: { timeoutMs?: number; onOutput?: (text: string) => void }): Promise<ExecResult>;
  /** Like exec, but throws (with the output) unless the command exits 0; returns stdout. */
  check(command: string, options?: { timeoutMs?: number; onOutput?: (text: string) => void }): Promise<string>;
  /** The serial console so far. */
  console(): Promise<string>;
  close(): Promise<void>;
}

export interface NodeVmOptions {
  image?: NodeVmImage;
  memoryMiB?: number;
  cpus?: number;
  /** Read-only raw disks: serial -> host file. */
  disks?: Record<string, string>;
  /** Writable disks: serial -> host raw file, which is never written (the VM writes to an overlay thrown away at close). */
  writableDisks?: Record<string, string>;
  bootTimeoutMs?: number;
  log?: (line: string) => void;
}

/** The kernel command line: cgroup v2 only, as on current Ubuntu and Debian nodes. */
export const kernelCommandLine = [
  "console=ttyS0,115200",
  "panic=-1",
  "loglevel=4",
  "mitigations=off",
  "systemd.unified_cgroup_hierarchy=1",
  "systemd.show_status=0",
].join(" ");

/** A shell expression, for commands in the VM, naming the device of the disk with this serial. */
export function diskDevice(serial: string): string {
  return `$(for d in /sys/block/vd*; do [ "$(cat $d/serial)" = '${serial}' ] && echo /dev/\${d##*/}; done)`;
}

const overlayFor = (dir: string, serial: string) => join(dir, `${serial}.qcow2`);

async function overlay(backing: string, file: string): Promise<void> {
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", backing, file]);
}

function qemuArguments(image: NodeVmImage, dir: string, options: NodeVmOptions): string[] {
  const disks = Object.entries(options.disks ?? {}).flatMap(([serial, file], i) => [
    "-drive",
    `file=${file},format=raw,if=none,id=disk${i},readonly=on`,
    "-device",
    `virtio-blk-pci,drive=disk${i},serial=${serial}`,
  ]);
  const writable = Object.keys(options.writableDisks ?? {}).flatMap((serial, i) => [
    "-drive",
    `file=${overlayFor(dir, serial)},format=qcow2,if=none,id=rw${i}`,
    "-device",
    `virtio-blk-pci,drive=rw${i},serial=${serial}`,
  ]);
  return [
    "-accel",
    "tcg,thread=multi",
    "-cpu",
    "max",
    "-smp",
    String(options.cpus ?? 2),
    "-m",
    String(options.memoryMiB ?? 2048),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-kernel",
    image.kernel,
    "-initrd",
    image.initrd,
    "-append",
    kernelCommandLine,
    "-drive",
    `file=${join(dir, "root.qcow2")},format=qcow2,if=none,id=root`,
    "-device",
    `virtio-blk-pci,drive=root,serial=${image.rootSerial}`,
    ...disks,
    ...writable,
    "-chardev",
    `file,id=console,path=${join(dir, "console.log")}`,
    "-serial",
    "chardev:console",
    "-device",
    "virtio-serial-pci",
    "-chardev",
    `socket,id=agent,path=${join(dir, "agent.sock")}`,
    "-device",
    "virtserialport,chardev=agent,name=cvm.agent",
    "-nic",
    "none",
  ];
}

interface Pending {
  stdout: string;
  stderr: string;
  onOutput?: (text: string) => void;
  resolve: (result: ExecResult) => void;
}

export async function startNodeVm(options: NodeVmOptions = {}): Promise<NodeVm> {
  const log = options.log ?? (() => {});
  const image = options.image ?? (await ensureNodeVm({ log }));
  for (const file of [...Object.values(options.disks ?? {}), ...Object.values(options.writableDisks ?? {})]) {
    if (!existsSync(file)) throw new Error(`node VM disk ${file} does not exist`);
  }
  // Short: the agent's unix socket path must fit in 108 bytes.
  const dir = await mkdtemp("/tmp/cvm-nodevm-");
  await overlay(image.rootfs, join(dir, "root.qcow2"));
  for (const [serial, file] of Object.entries(options.writableDisks ?? {}))
    await overlay(file, overlayFor(dir, serial));

  const pending = new Map<number, Pending>();
  let nextId = 1;
  let agent: Socket | undefined;
  let qemu: ChildProcess | undefined;
  let exited: string | undefined;
  const consoleText = () => readFile(join(dir, "console.log"), "utf8").catch(() => "");

  // qemu connects to us (a client chardev), so the port is connected from the VM's first instruction.
  const server = createServer();
  const ready = new Promise<void>((resolve, reject) => {
    server.on("connection", (socket) => {
      agent = socket;
      createInterface({ input: socket }).on("line", (line) => {
        let message: {
          ready?: boolean;
          id?: number;
          stream?: "stdout" | "stderr";
          data?: string;
          exit?: number | null;
          signal?: string | null;
        };
        try {
          message = JSON.parse(line);
        } catch {
          return;
        }
        if (message.ready) resolve();
        const waiting = message.id === undefined ? undefined : pending.get(message.id);
        if (!waiting || message.id === undefined) return;
        if (message.stream) {
          waiting[message.stream] += message.data ?? "";
          waiting.onOutput?.(message.data ?? "");
        } else if ("exit" in message) {
          pending.delete(message.id);
          waiting.resolve({
            code: message.exit ?? null,
            signal: message.signal ?? null,
            stdout: waiting.stdout,
            stderr: waiting.stderr,
          });
        }
      });
      socket.on("error", reject);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(join(dir, "agent.sock"), resolve);
  });

  const close = async () => {
    agent?.destroy();
    server.close();
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      const gone = new Promise((resolve) => qemu?.once("exit", resolve));
      qemu.kill("SIGTERM");
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5000))]);
      if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill("SIGKILL");
    }
    for (const waiting of pending.values()) {
      waiting.resolve({ code: null, signal: "VM closed", stdout: waiting.stdout, stderr: waiting.stderr });
    }
    pending.clear();
    await rm(dir, { recursive: true, force: true });
  };

  const started = Date.now();
  // setpriv (util-linux) makes the kernel kill qemu when this process dies without close(), as a test
  // file stopped by its timeout or a Ctrl-C does: no VM left behind, spinning two cores under emulation.
  qemu = spawn("setpriv", ["--pdeathsig", "SIGKILL", "--", qemuBinary, ...qemuArguments(image, dir, options)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let qemuStderr = "";
  qemu.stderr?.on("data", (chunk) => {
    qemuStderr += chunk.toString();
  });
  const exitedEarly = new Promise<never>((_, reject) => {
    qemu?.once("exit", (code, signal) => {
      exited = `qemu exited (${signal ?? `code ${code}`})`;
      reject(new Error(exited));
    });
    qemu?.once("error", (error) => reject(error));
  });
  exitedEarly.catch(() => undefined);
  const timeoutMs = options.bootTimeoutMs ?? 180_000;
  try {
    await Promise.race([
      ready,
      exitedEarly,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`the node VM's agent did not answer within ${timeoutMs} ms`)), timeoutMs),
      ),
    ]);
  } catch (error) {
    const tail = (await consoleText()).split("\n").slice(-40).join("\n");
    await close();
    throw new Error(`${(error as Error).message}\nqemu: ${qemuStderr.trim()}\nconsole (tail):\n${tail}`);
  }
  const bootMs = Date.now() - started;
  log(`nodevm: agent answering ${(bootMs / 1000).toFixed(1)} s after qemu started`);

  const exec: NodeVm["exec"] = (command, execOptions = {}) => {
    if (exited || !agent) return Promise.reject(new Error(`the node VM is not running (${exited ?? "no agent"})`));
    const id = nextId++;
    const result = new Promise<ExecResult>((resolve) => {
      pending.set(id, { stdout: "", stderr: "", onOutput: execOptions.onOutput, resolve });
    });
    agent.write(`${JSON.stringify({ id, command })}\n`);
    const timeoutMs = execOptions.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const partial = pending.get(id);
        pending.delete(id);
        reject(
          new Error(
            `node VM: \`${command}\` did not finish within ${timeoutMs} ms\n${partial?.stdout ?? ""}${partial?.stderr ?? ""}`,
          ),
        );
      }, timeoutMs);
    });
    return Promise.race([result, timeout]).finally(() => clearTimeout(timer));
  };

  const check: NodeVm["check"] = async (command, execOptions) => {
    const result = await exec(command, execOptions);
    if (result.code !== 0) {
      throw new Error(
        `node VM: \`${command}\` exited ${result.code ?? result.signal}\n${result.stdout}\n${result.stderr}`.trim(),
      );
    }
    return result.stdout;
  };

  return { image, bootMs, exec, check, console: consoleText, close };
}
