/**
 * A VM-like /proc for CVMs: LXCFS (Debian's `lxcfs`) serves meminfo,
 * cpuinfo, stat, uptime, loadavg, diskstats, swaps and
 * /sys/devices/system/cpu/online per cgroup through FUSE, so `free`, `top`,
 * `uptime` and anything reading those files see the CVM's own memory, CPUs
 * and uptime rather than the node's. cvm starts one lxcfs per data dir where
 * none serves it (the node's own, at /var/lib/lxcfs, is used when it runs), detached so that running CVMs keep their files across a
 * server restart, and starts it again if it dies; each CVM gets its files
 * bind-mounted over its own at create. Kept apart from cvm-container.ts: the
 * mounts are added to the request it builds.
 *
 * Not virtualized here: `nproc` counts the CPUs a process may run on
 * (sched_getaffinity), which only a cpuset changes; a CPU quota does not. It
 * answers OMP_NUM_THREADS instead, which every session cvm opens carries at
 * the CVM's CPUs (src/core/login-account.ts), and every unit systemd starts
 * (the start gate's drop-in, gate/cvm-gate.c).
 */

import { execFile, spawn } from "node:child_process";
import { access, mkdir, open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import type Dockerode from "dockerode";
import type { Logger } from "pino";

const run = promisify(execFile);

/** The files LXCFS virtualizes, as a CVM sees them. */
export const lxcfsFiles = [
  "/proc/meminfo",
  "/proc/cpuinfo",
  "/proc/stat",
  "/proc/uptime",
  "/proc/loadavg",
  "/proc/diskstats",
  "/proc/swaps",
  "/sys/devices/system/cpu/online",
] as const;

/** Bind mounts of LXCFS's files over the container's own. */
export function lxcfsMounts(mountpoint: string): Dockerode.MountSettings[] {
  return lxcfsFiles.map((file) => ({ Type: "bind", Source: `${mountpoint}${file}`, Target: file, ReadOnly: false }));
}

/** Adds LXCFS's files to a container request (none when LXCFS is unavailable). */
export function withLxcfs(
  request: Dockerode.ContainerCreateOptions,
  mountpoint?: string,
): Dockerode.ContainerCreateOptions {
  if (!mountpoint) return request;
  const hostConfig = request.HostConfig ?? {};
  return {
    ...request,
    HostConfig: { ...hostConfig, Mounts: [...(hostConfig.Mounts ?? []), ...lxcfsMounts(mountpoint)] },
  };
}

/** Where Debian's lxcfs.service mounts it. */
const systemMountpoint = "/var/lib/lxcfs";

export type LxcfsState = { mountpoint: string; note: string } | { mountpoint?: undefined; note: string };

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Whether an LXCFS file system is mounted at `mountpoint` (by this node's mount table). */
async function mounted(mountpoint: string): Promise<boolean> {
  const table = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  return table.split("\n").some((line) => {
    const fields = line.split(" ");
    const separator = fields.indexOf("-");
    return fields[4] === mountpoint && fields[separator + 1]?.startsWith("fuse") && line.includes("lxcfs");
  });
}

export class Lxcfs {
  private readonly mountpoint: string;
  private readonly pidfile: string;
  private readonly logFile: string;
  private startedHere?: number;
  private ensuring?: Promise<LxcfsState>;

  constructor(
    dir: string,
    private readonly logger: Logger,
  ) {
    this.mountpoint = join(dir, "mnt");
    this.pidfile = join(dir, "lxcfs.pid");
    this.logFile = join(dir, "lxcfs.log");
  }

  /** LXCFS serving at the mountpoint: found, started, or started again after it died; or why not. */
  ensure(): Promise<LxcfsState> {
    this.ensuring ??= this.bringUp().finally(() => {
      this.ensuring = undefined;
    });
    return this.ensuring;
  }

  private async serving(): Promise<boolean> {
    return (await mounted(this.mountpoint)) && (await exists(join(this.mountpoint, "proc", "meminfo")));
  }

  private async bringUp(): Promise<LxcfsState> {
    if (await this.serving()) return { mountpoint: this.mountpoint, note: `lxcfs serves ${this.mountpoint}` };
    // The node's own lxcfs (Debian's lxcfs.service) serves every CVM as well as one of cvm's.
    if ((await mounted(systemMountpoint)) && (await exists(join(systemMountpoint, "proc", "meminfo")))) {
      return { mountpoint: systemMountpoint, note: `the node's lxcfs serves ${systemMountpoint}` };
    }
    const binary = await run("sh", ["-c", "command -v lxcfs"]).then(
      ({ stdout }) => stdout.trim(),
      () => "",
    );
    if (!binary)
      return { note: "lxcfs is not installed (apt-get install lxcfs): /proc shows the node's memory and CPUs" };
    if (!(await exists("/dev/fuse")))
      return { note: "no /dev/fuse on this node: /proc shows the node's memory and CPUs" };
    // A mount whose lxcfs died answers "Transport endpoint is not connected" until it is gone.
    if (await mounted(this.mountpoint)) {
      this.logger.warn(
        { mountpoint: this.mountpoint },
        "lxcfs died; CVMs started before see stale /proc files until restarted",
      );
      await run("umount", ["-l", this.mountpoint]).catch(() => undefined);
    }
    await mkdir(this.mountpoint, { recursive: true, mode: 0o755 });
    await rm(this.pidfile, { force: true });
    const log = await open(this.logFile, "a");
    let exited: string | undefined;
    try {
      const child = spawn(
        binary,
        ["--foreground", "--enable-cfs", "--enable-loadavg", `--pidfile=${this.pidfile}`, this.mountpoint],
        { detached: true, stdio: ["ignore", log.fd, log.fd] },
      );
      child.on("error", (error) => {
        exited = error.message;
      });
      child.on("exit", (code, signal) => {
        exited = `lxcfs exited (${signal ?? `code ${code}`})`;
      });
      child.unref();
      this.startedHere = child.pid;
    } finally {
      await log.close();
    }
    for (let waited = 0; waited < 10_000 && !exited; waited += 50) {
      if (await this.serving()) {
        this.logger.info({ mountpoint: this.mountpoint }, "started lxcfs");
        return { mountpoint: this.mountpoint, note: `lxcfs serves ${this.mountpoint}` };
      }
      await sleep(50);
    }
    const tail = (await readFile(this.logFile, "utf8").catch(() => "")).trim().split("\n").slice(-3).join("; ");
    return {
      note: `lxcfs did not start (${exited ?? "no mount within 10 s"}${tail ? `: ${tail}` : ""}): /proc shows the node's`,
    };
  }

  /** Whether this process started the lxcfs that serves. */
  running(): boolean {
    return this.startedHere !== undefined;
  }

  /** Stops the lxcfs this process started (with its engine: the CVMs using it are gone). */
  async close(): Promise<void> {
    if (!this.startedHere) return;
    try {
      process.kill(this.startedHere, "SIGTERM");
    } catch {
      // Already gone.
    }
    for (let i = 0; i < 50 && (await mounted(this.mountpoint)); i++) await sleep(100);
    if (await mounted(this.mountpoint)) await run("umount", ["-l", this.mountpoint]).catch(() => undefined);
    this.startedHere = undefined;
  }
}
