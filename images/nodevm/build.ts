/**
 * The node VM: a Debian bookworm machine with a cgroup v2 kernel, built from
 * Debian's packages, to run cvm's CVM runtime where production nodes are
 * (cgroup v2, AppArmor enforced) when the build machine itself is not.
 *
 *   node --import tsx images/nodevm/build.ts [--force]
 *
 * What it makes, cached under /var/cache/cvm/nodevm/<recipe hash>/ (never in git):
 * - vmlinuz: Debian's linux-image-cloud-amd64 (its virtio drivers are modules);
 * - initrd.img: busybox-static and an init (init.sh) that loads those modules,
 *   finds the disk with serial cvm-root and starts systemd on it;
 * - rootfs.raw: an ext4 image (mkfs.ext4 -d, no loop mounts) of an mmdebstrap
 *   root with systemd, Docker's engine, iptables, AppArmor, the kernel's
 *   modules, the build host's node binary (bookworm's nodejs is 18; cvm needs
 *   20) and the agent (agent.mjs) that runs the host's commands.
 * Boot it with test/harness/nodevm.ts (startNodeVm).
 */

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  appendFileSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { buildInitramfs } from "./initramfs.js";

const run = promisify(execFile);

/** Bumped when the builder changes what it makes from the recipe. */
const builderVersion = 1;

const machineCache = process.env.CVM_CACHE_DIR ?? "/var/cache/cvm";
export const nodeVmCacheDir = join(machineCache, "nodevm");
const debCache = join(machineCache, "apt", "nodevm");
const here = fileURLToPath(new URL(".", import.meta.url));

export const nodeVmRecipe = {
  suite: "bookworm",
  mirrors: [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
  ],
  kernelPackage: "linux-image-cloud-amd64",
  /** What a Kubernetes or Docker node running cvm's supervisor has, plus AppArmor as Ubuntu nodes enforce it. */
  packages: [
    "systemd",
    "systemd-sysv",
    "dbus",
    "docker.io",
    "containerd",
    "runc",
    "iptables",
    "kmod",
    "uidmap",
    "iproute2",
    "procps",
    "apparmor",
    "libstdc++6",
  ],
  /** Loaded by the initramfs (with their dependencies): the root disk and the agent's port. */
  initramfsModules: ["virtio_pci", "virtio_blk", "virtio_console"],
  /** Sparse: room for cvm's engine, one CVM image and its containers. */
  diskGiB: 8,
  /**
   * The node's containerd runs, as on a Kubernetes node, and cvm's dockerd uses
   * it: a dockerd that starts its own containerd gives up on it under emulation
   * ("timeout waiting for containerd to start").
   */
  enabled: ["containerd.service"],
  /**
   * The node's own dockerd is not started: cvm's supervisor runs its own engine.
   * Nobody logs in: without udev (minbase) no device unit ever appears, so the
   * serial console's getty waited 90 s for dev-ttyS0.device and held back
   * `systemctl is-system-running --wait` that long. Nor is there a disk to scrub.
   */
  masked: [
    "docker.service",
    "docker.socket",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "getty.target",
    "serial-getty@ttyS0.service",
    "e2scrub_reap.service",
  ],
};

export interface NodeVmImage {
  hash: string;
  dir: string;
  kernel: string;
  initrd: string;
  /** Never written: each boot gets a copy-on-write overlay. */
  rootfs: string;
  /** Read by the initramfs to find the root disk. */
  rootSerial: string;
  kernelVersion: string;
  nodeVersion: string;
}

type Log = (line: string) => void;

const sources = {
  init: join(here, "init.sh"),
  agent: join(here, "agent.mjs"),
};

/** The node binary the VM carries: the one running this builder, which must be 20 or newer. */
function nodeBinary(): { path: string; version: string } {
  const major = Number(process.versions.node.split(".")[0]);
  if (major < 20) throw new Error(`node ${process.version} is too old for cvm (needs 20 or newer)`);
  return { path: process.execPath, version: process.version };
}

/** The recipe hash covers the recipe, the init and agent sources, the node version and the builder's version. */
export function nodeVmHash(): string {
  return createHash("sha256")
    .update(
      JSON.stringify({
        recipe: nodeVmRecipe,
        init: readFileSync(sources.init, "utf8"),
        agent: readFileSync(sources.agent, "utf8"),
        node: nodeBinary().version,
        base: baseHash(),
        builderVersion,
      }),
    )
    .digest("hex")
    .slice(0, 12);
}

function describe(hash: string, manifest: { kernelVersion: string; nodeVersion: string }): NodeVmImage {
  const dir = join(nodeVmCacheDir, hash);
  return {
    hash,
    dir,
    kernel: join(dir, "vmlinuz"),
    initrd: join(dir, "initrd.img"),
    rootfs: join(dir, "rootfs.raw"),
    rootSerial: "cvm-root",
    ...manifest,
  };
}

async function sh(command: string, args: string[], what: string): Promise<string> {
  try {
    const { stdout } = await run(command, args, { maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const stderr = ((error as { stderr?: string }).stderr ?? "").trim().split("\n").slice(-15).join("\n");
    throw new Error(`node VM build: ${what} failed: ${stderr || (error as Error).message}`, { cause: error });
  }
}

/** The base layer covers only what mmdebstrap fetches; the rest of the image is quick to redo from it. */
function baseHash(): string {
  const { suite, mirrors, kernelPackage, packages } = nodeVmRecipe;
  return createHash("sha256")
    .update(JSON.stringify({ suite, mirrors, kernelPackage, packages, builderVersion }))
    .digest("hex")
    .slice(0, 12);
}

/**
 * The base layer, cached: the root filesystem as mmdebstrap makes it (root.tar)
 * and the kernel and busybox packages (debs/), fetched by the root's own apt
 * (same suite, fresh lists) and copied out for the builder to unpack outside it.
 */
async function ensureBase(log: Log): Promise<string> {
  const dir = join(nodeVmCacheDir, `base-${baseHash()}`);
  if (existsSync(join(dir, "root.tar"))) return dir;
  const work = `${dir}.partial-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, "debs"), { recursive: true });
  mkdirSync(debCache, { recursive: true });
  const fetch = join(work, "fetch-packages.sh");
  writeFileSync(
    fetch,
    [
      "set -e",
      "mkdir -p /tmp/cvm-debs && cd /tmp/cvm-debs",
      `kernel=$(apt-cache depends --important ${nodeVmRecipe.kernelPackage} | sed -n 's/^ *Depends: //p')`,
      'apt-get -q -o APT::Sandbox::User=root download busybox-static "$kernel" >/dev/null',
      "",
    ].join("\n"),
  );
  const started = Date.now();
  log(`nodevm: mmdebstrap ${nodeVmRecipe.suite} (${nodeVmRecipe.packages.join(" ")})`);
  try {
    await sh(
      "mmdebstrap",
      [
        "--variant=minbase",
        "--mode=root",
        "--format=tar",
        "--quiet",
        `--include=${nodeVmRecipe.packages.join(",")}`,
        "--skip=download/empty",
        "--skip=essential/unlink",
        `--setup-hook=mkdir -p "$1/var/cache/apt/archives"`,
        `--setup-hook=sync-in '${debCache}' /var/cache/apt/archives/`,
        `--customize-hook=sync-out /var/cache/apt/archives '${debCache}'`,
        `--customize-hook=chroot "$1" sh -s < '${fetch}'`,
        `--customize-hook=sync-out /tmp/cvm-debs '${join(work, "debs")}'`,
        nodeVmRecipe.suite,
        join(work, "root.tar"),
        ...nodeVmRecipe.mirrors,
      ],
      "mmdebstrap",
    );
  } catch (error) {
    rmSync(work, { recursive: true, force: true });
    throw error;
  }
  rmSync(fetch);
  rmSync(dir, { recursive: true, force: true });
  renameSync(work, dir);
  log(`nodevm: base root filesystem in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return dir;
}

/** Unpacks the downloaded kernel and busybox packages; returns the kernel's version and where things are. */
async function unpackPackages(
  base: string,
  work: string,
): Promise<{ kernelVersion: string; vmlinuz: string; modules: string; busybox: string }> {
  const debs = join(base, "debs");
  const files = readdirSync(debs);
  const kernelDeb = files.find((f) => /^linux-image-\d.*\.deb$/.test(f));
  const busyboxDeb = files.find((f) => f.startsWith("busybox-static_"));
  if (!kernelDeb || !busyboxDeb)
    throw new Error(`node VM build: kernel or busybox package missing in ${debs}: ${files.join(" ")}`);
  const kernelTree = join(work, "kernel");
  const busyboxTree = join(work, "busybox");
  await sh("dpkg-deb", ["-x", join(debs, kernelDeb), kernelTree], `dpkg-deb -x ${kernelDeb}`);
  await sh("dpkg-deb", ["-x", join(debs, busyboxDeb), busyboxTree], `dpkg-deb -x ${busyboxDeb}`);
  const moduleRoot = join(
    kernelTree,
    existsSync(join(kernelTree, "usr/lib/modules")) ? "usr/lib/modules" : "lib/modules",
  );
  const [kernelVersion] = readdirSync(moduleRoot);
  return {
    kernelVersion,
    vmlinuz: join(kernelTree, "boot", `vmlinuz-${kernelVersion}`),
    modules: join(moduleRoot, kernelVersion),
    busybox: join(busyboxTree, "bin", "busybox"),
  };
}

/** What makes the root a node: the kernel's modules, node and the agent, the remapped root's range, quiet units. */
async function completeRoot(root: string, kernel: { version: string; modules: string }, log: Log): Promise<void> {
  cpSync(kernel.modules, join(root, "usr/lib/modules", kernel.version), { recursive: true });
  await sh("chroot", [root, "depmod", kernel.version], "depmod");

  copyFileSync(nodeBinary().path, join(root, "usr/local/bin/node"));
  await sh("chmod", ["0755", join(root, "usr/local/bin/node")], "chmod node");
  mkdirSync(join(root, "usr/local/lib/cvm"), { recursive: true });
  copyFileSync(sources.agent, join(root, "usr/local/lib/cvm/agent.mjs"));
  writeFileSync(
    join(root, "etc/systemd/system/cvm-agent.service"),
    [
      "[Unit]",
      "Description=cvm node VM agent (runs the host's commands from the cvm.agent port)",
      "DefaultDependencies=no",
      "After=systemd-remount-fs.service",
      "",
      "[Service]",
      "ExecStart=/usr/local/bin/node /usr/local/lib/cvm/agent.mjs",
      "Restart=always",
      "StandardOutput=journal+console",
      "RestartSec=1",
      "",
      "[Install]",
      "WantedBy=sysinit.target",
      "",
    ].join("\n"),
  );
  await sh("chroot", [root, "systemctl", "enable", "cvm-agent.service", ...nodeVmRecipe.enabled], "enable units");
  await sh("chroot", [root, "systemctl", "mask", ...nodeVmRecipe.masked], "mask units");

  writeFileSync(join(root, "etc/hostname"), "cvm-node\n");
  writeFileSync(join(root, "etc/fstab"), "# the initramfs mounts the root read-write\n");
  // The remapped root of cvm's engine, as scripts/provision.sh makes it on a node.
  await sh(
    "chroot",
    [root, "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "dockremap"],
    "useradd",
  );
  appendFileSync(join(root, "etc/subuid"), "dockremap:100000:65536\n");
  appendFileSync(join(root, "etc/subgid"), "dockremap:100000:65536\n");
  log(`nodevm: root completed (kernel modules ${kernel.version}, node ${nodeBinary().version}, agent)`);
}

async function build(hash: string, log: Log): Promise<NodeVmImage> {
  const dir = join(nodeVmCacheDir, hash);
  const work = `${dir}.partial-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const started = Date.now();
  try {
    const base = await ensureBase(log);
    const root = join(work, "root");
    mkdirSync(root);
    await sh(
      "tar",
      ["-xf", join(base, "root.tar"), "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*"],
      "tar -x",
    );
    const unpacked = await unpackPackages(base, work);
    copyFileSync(unpacked.vmlinuz, join(work, "vmlinuz"));
    await completeRoot(root, { version: unpacked.kernelVersion, modules: unpacked.modules }, log);

    const initramfs = buildInitramfs({
      busybox: unpacked.busybox,
      initScript: sources.init,
      moduleDir: join(root, "usr/lib/modules", unpacked.kernelVersion),
      modules: nodeVmRecipe.initramfsModules,
    });
    writeFileSync(join(work, "initrd.img"), initramfs.archive);
    log(`nodevm: initramfs with busybox and ${initramfs.modules.join(", ")}`);

    const disk = join(work, "rootfs.raw");
    await sh("truncate", ["-s", `${nodeVmRecipe.diskGiB}G`, disk], "truncate");
    await sh("mkfs.ext4", ["-q", "-F", "-L", "cvm-node", "-d", root, disk], "mkfs.ext4 -d");
    rmSync(root, { recursive: true, force: true });
    rmSync(join(work, "kernel"), { recursive: true, force: true });
    rmSync(join(work, "busybox"), { recursive: true, force: true });

    const manifest = { kernelVersion: unpacked.kernelVersion, nodeVersion: nodeBinary().version };
    writeFileSync(
      join(work, "manifest.json"),
      `${JSON.stringify({ hash, ...manifest, recipe: nodeVmRecipe }, null, 2)}\n`,
    );
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    log(`nodevm: built ${dir} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return describe(hash, manifest);
  } catch (error) {
    // mmdebstrap's directory may hold bind mounts only while it runs; by now it is plain files.
    rmSync(work, { recursive: true, force: true });
    throw error;
  }
}

/** Older builds (another recipe) are several hundred MiB each: only the current ones stay. */
function pruneOthers(keep: string[]): void {
  for (const entry of readdirSync(nodeVmCacheDir)) {
    const built = /^([0-9a-f]{12}|base-[0-9a-f]{12})$/.test(entry);
    if (built && !keep.includes(entry)) rmSync(join(nodeVmCacheDir, entry), { recursive: true, force: true });
  }
}

function cached(hash: string): NodeVmImage | undefined {
  const manifest = join(nodeVmCacheDir, hash, "manifest.json");
  if (!existsSync(manifest)) return undefined;
  return describe(hash, JSON.parse(readFileSync(manifest, "utf8")));
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One build per machine at a time; a lock left by a dead process is taken over. */
async function withLock<T>(log: Log, work: () => Promise<T>): Promise<T> {
  mkdirSync(nodeVmCacheDir, { recursive: true });
  const lock = join(nodeVmCacheDir, "build.lock");
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(lock, "wx");
      writeFileSync(fd, String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number(readFileSync(lock, "utf8").trim());
      if (!holder || !processAlive(holder)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (!announced) log(`nodevm: waiting for the build of process ${holder}`);
      announced = true;
      await sleep(1000);
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** The node VM for the current recipe: from the cache, or built (a few minutes on two cores). */
export async function ensureNodeVm(options: { force?: boolean; log?: Log } = {}): Promise<NodeVmImage> {
  const log = options.log ?? ((line: string) => console.error(line));
  const hash = nodeVmHash();
  if (!options.force) {
    const image = cached(hash);
    if (image) return image;
  }
  return withLock(log, async () => {
    if (!options.force) {
      const image = cached(hash);
      if (image) return image;
    }
    const image = await build(hash, log);
    pruneOthers([hash, `base-${baseHash()}`]);
    return image;
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = Date.now();
  const image = await ensureNodeVm({ force: process.argv.includes("--force") });
  console.log(JSON.stringify(image, null, 2));
  console.error(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
