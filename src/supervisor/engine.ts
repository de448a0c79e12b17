/**
 * cvm's own container engine: a dockerd with --userns-remap, beside the
 * host's, with its data root, exec root, pidfile, socket and log under
 * `<dataDir>/engine`. Started on first use, adopted when one already answers
 * on its socket (the server restarted), restarted when it died, stopped by
 * close() when this process started it.
 */

import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, chown, lstat, mkdir, open, readFile, realpath, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import Dockerode from "dockerode";
import type { Logger } from "pino";
import { answerWithin } from "../core/deadline.js";
import { CvmError } from "../core/errors.js";
import { type EngineNetwork, ensureBridge, removeNetwork } from "./engine-network.js";
import { sweepDiskVolumes } from "./environment-disks.js";
import { raiseNodeLimits } from "./node-limits.js";

const run = promisify(execFile);

/** The user whose subordinate range the engine maps container root to (`--userns-remap=default`). */
export const remapUser = "dockremap";

export interface RemappedRoot {
  uid: number;
  gid: number;
  size: number;
}

/** Reads `dockremap:100000:65536` from /etc/subuid and /etc/subgid. */
export function parseSubordinate(text: string, user: string): { start: number; size: number } | undefined {
  for (const line of text.split("\n")) {
    const [name, start, size] = line.trim().split(":");
    if (name === user && start && size) return { start: Number(start), size: Number(size) };
  }
  return undefined;
}

export async function remappedRoot(): Promise<RemappedRoot> {
  const [subuid, subgid] = await Promise.all([
    readFile("/etc/subuid", "utf8").catch(() => ""),
    readFile("/etc/subgid", "utf8").catch(() => ""),
  ]);
  const uids = parseSubordinate(subuid, remapUser);
  const gids = parseSubordinate(subgid, remapUser);
  if (!uids || !gids) {
    throw new CvmError("UNAVAILABLE", `No subordinate id range for ${remapUser}: CVMs cannot run on this node`, {
      detail: "Run scripts/provision.sh (it adds dockremap:100000:65536 to /etc/subuid and /etc/subgid).",
    });
  }
  return { uid: uids.start, gid: gids.start, size: Math.min(uids.size, gids.size) };
}

export interface EnginePaths {
  root: string;
  dataRoot: string;
  execRoot: string;
  pidfile: string;
  socket: string;
  log: string;
  bin: string;
  /** Each CVM's disks for its home and its inner Docker's data (environment-disks.ts). */
  disks: string;
  /** The engine's own daemon.json: never the host engine's /etc/docker/daemon.json. */
  config: string;
  /** The pid of the process that owns the engine (started it, or took it over from one that died). */
  owner: string;
}

export function enginePaths(dataDir: string): EnginePaths {
  const root = join(dataDir, "engine");
  return {
    root,
    dataRoot: join(root, "data"),
    execRoot: join(root, "exec"),
    pidfile: join(root, "dockerd.pid"),
    socket: join(root, "docker.sock"),
    log: join(root, "dockerd.log"),
    bin: join(root, "bin"),
    disks: join(root, "disks"),
    config: join(root, "daemon.json"),
    owner: join(root, "owner.pid"),
  };
}

/**
 * The engine's daemon.json: the runtimes registered with the node's engine
 * (sysbox's installer registers sysbox-runc there), so the isolation runtime
 * sysbox is offered where the node has it, and the registries it may reach
 * over plain HTTP (an in-cluster registry; the installation names them).
 * Nothing else of the host engine's configuration applies: its hosts, data
 * root or bridge would clash.
 */
export function engineConfig(
  hostConfig: string | undefined,
  insecureRegistries: string[] = [],
): { runtimes?: Record<string, unknown>; "insecure-registries"?: string[] } {
  let runtimes: Record<string, unknown> | undefined;
  try {
    runtimes = hostConfig ? (JSON.parse(hostConfig) as { runtimes?: Record<string, unknown> }).runtimes : undefined;
  } catch {
    runtimes = undefined;
  }
  return {
    ...(runtimes ? { runtimes } : {}),
    ...(insecureRegistries.length > 0 ? { "insecure-registries": insecureRegistries } : {}),
  };
}

/** The engine's command line: every choice here is part of the CVM's isolation. */
export function dockerdArguments(paths: EnginePaths, network: EngineNetwork): string[] {
  return [
    `--config-file=${paths.config}`,
    "--userns-remap=default",
    `--data-root=${paths.dataRoot}`,
    `--exec-root=${paths.execRoot}`,
    `--pidfile=${paths.pidfile}`,
    `--host=unix://${paths.socket}`,
    "--storage-driver=overlay2",
    // Its own bridge; docker0 belongs to the host's engine.
    `--bridge=${network.bridge}`,
    // See engine-network.ts: dockerd's own iptables management would wipe the host engine's chains.
    "--iptables=false",
    "--ip-masq=false",
    // cgroupfs makes the container's cgroup directories plain paths under /cvm that
    // cgroup-delegation.ts can hand over, whatever manages the node's own cgroups.
    "--exec-opt=native.cgroupdriver=cgroupfs",
    "--cgroup-parent=/cvm",
    // No --default-address-pool: with one set (and no --live-restore), dockerd deletes the
    // host's docker0 whenever it starts with a stale default network (moby daemon_unix.go,
    // removeDefaultBridgeInterface), which breaks every container of the host's engine.
    // CVMs outlive the engine: a server restart (or upgrade) stops and restarts
    // the engine, and every environment keeps running meanwhile.
    "--live-restore",
    "--log-opt=max-size=10m",
    "--log-opt=max-file=2",
  ];
}

async function ping(docker: Dockerode): Promise<boolean> {
  try {
    // A dockerd that accepts and never answers counts as not answering: the caller waits for it, or replaces it.
    await answerWithin(docker.ping(), 5000, "the engine's ping");
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function readPid(pidfile: string): Promise<number | undefined> {
  const text = await readFile(pidfile, "utf8").catch(() => "");
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The first directory above `path` that the remapped root cannot search, if any. */
async function untraversable(path: string, root: RemappedRoot): Promise<string | undefined> {
  for (let dir = dirname(path); dir !== "/"; dir = dirname(dir)) {
    const info = await stat(dir);
    const bit = info.uid === root.uid ? 0o100 : info.gid === root.gid ? 0o010 : 0o001;
    if ((info.mode & bit) === 0) return dir;
  }
  return undefined;
}

/**
 * Where an engine lives when its data dir cannot host it: Docker refuses a
 * remapped data root whose ancestors the remapped root cannot search, and a
 * data dir in a private home (root's own is 0700) has such an ancestor.
 */
export const relocatedEnginesDir = "/var/lib/cvm-engines";

export function relocatedEngineRoot(dataDir: string): string {
  return join(relocatedEnginesDir, createHash("sha256").update(resolve(dataDir)).digest("hex").slice(0, 16));
}

export interface CvmEngineOptions {
  dataDir: string;
  logger: Logger;
  /** How long a start may take before it counts as failed. */
  startTimeoutMs?: number;
  /** Registries (host:port) the engine may pull from over plain HTTP. */
  insecureRegistries?: string[];
}

export class CvmEngine {
  readonly paths: EnginePaths;
  readonly docker: Dockerode;
  private readonly logger: Logger;
  private starting?: Promise<void>;
  private startedHere = false;
  private lastHealthy = 0;
  private healthTimer?: NodeJS.Timeout;
  private limitsChecked = false;
  network?: EngineNetwork;
  root?: RemappedRoot;

  constructor(private readonly options: CvmEngineOptions) {
    this.paths = enginePaths(options.dataDir);
    this.logger = options.logger.child({ component: "cvm-engine" });
    this.docker = new Dockerode({ socketPath: this.paths.socket });
  }

  /** Answers once the engine is up: adopted, started, or restarted after it died. */
  async ensure(): Promise<Dockerode> {
    if (Date.now() - this.lastHealthy < 2000) return this.docker;
    if (!this.starting) {
      this.starting = this.bringUp().finally(() => {
        this.starting = undefined;
      });
    }
    await this.starting;
    this.lastHealthy = Date.now();
    if (!this.healthTimer) {
      this.healthTimer = setInterval(() => {
        this.lastHealthy = 0;
        this.ensure().catch((error) => this.logger.error({ err: error }, "cvm engine health check failed"));
      }, 15_000);
      this.healthTimer.unref();
    }
    return this.docker;
  }

  private async bringUp(): Promise<void> {
    if (!this.limitsChecked) {
      this.limitsChecked = true;
      for (const change of await raiseNodeLimits()) {
        if (change.problem) this.logger.warn(change, "could not raise a per-user kernel limit that CVMs share");
        else this.logger.info(change, "raised a per-user kernel limit that CVMs share");
      }
    }
    if (await ping(this.docker)) {
      if (!this.network) {
        this.root = await remappedRoot();
        this.network = await ensureBridge(this.options.dataDir);
        // Its owner died (a server killed with SIGKILL): nobody else would ever stop it, so it is ours now.
        const owner = await readPid(this.paths.owner);
        if (!owner || !alive(owner)) await this.own();
        this.logger.info(
          { socket: this.paths.socket, owned: this.startedHere },
          "adopted the cvm engine already answering",
        );
      }
      return;
    }
    const begun = Date.now();
    this.root = await remappedRoot();
    await this.prepareDirectories(this.root);
    this.network = await ensureBridge(this.options.dataDir);
    const stale = await readPid(this.paths.pidfile);
    if (stale && alive(stale)) {
      // A dockerd that does not answer: wait for it briefly, then replace it.
      if (await this.waitForPing(5000)) return;
      this.logger.warn({ pid: stale }, "cvm engine does not answer; restarting it");
      await this.terminate(stale, 15_000);
    }
    await rm(this.paths.pidfile, { force: true });
    await rm(this.paths.socket, { force: true });
    const log = await open(this.paths.log, "a");
    let exited: string | undefined;
    try {
      // Docker checks the remapped data root's ancestors as written, so it gets the real path.
      const real = await realpath(this.paths.root);
      const paths = { ...this.paths, dataRoot: join(real, "data"), execRoot: join(real, "exec") };
      const child = spawn("dockerd", dockerdArguments(paths, this.network), {
        detached: true,
        stdio: ["ignore", log.fd, log.fd],
        cwd: this.paths.root,
      });
      child.on("error", (error) => {
        exited = error.message;
      });
      child.on("exit", (code, signal) => {
        exited = `dockerd exited (${signal ?? `code ${code}`})`;
      });
      child.unref();
    } finally {
      await log.close();
    }
    await this.own();
    if (!(await this.waitForPing(this.options.startTimeoutMs ?? 60_000, () => exited !== undefined))) {
      const tail = (await readFile(this.paths.log, "utf8").catch(() => "")).trim().split("\n").slice(-5).join("\n");
      throw new CvmError("UNAVAILABLE", "cvm's container engine did not start", {
        detail: `${exited ?? "no answer"}; see ${this.paths.log}:\n${tail}`,
      });
    }
    this.logger.info({ socket: this.paths.socket, ms: Date.now() - begun }, "started the cvm engine");
    const swept = await sweepDiskVolumes(this.docker, this.paths.disks).catch((error: Error) => {
      this.logger.warn({ err: error }, "could not sweep the records of removed disks' volumes");
      return [];
    });
    if (swept.length > 0) this.logger.info({ volumes: swept }, "removed the records of volumes whose disks are gone");
  }

  /** This process owns the engine: it stops it on close. */
  private async own(): Promise<void> {
    this.startedHere = true;
    await writeFile(this.paths.owner, `${process.pid}\n`, { mode: 0o600 });
  }

  private async prepareDirectories(root: RemappedRoot): Promise<void> {
    await this.placeRoot(root);
    await mkdir(this.paths.root, { recursive: true });
    // Root-only, except that the remapped root may traverse (not list) it: Docker
    // requires that of every ancestor of a remapped data root.
    await chown(this.paths.root, 0, root.gid);
    await chmod(this.paths.root, 0o710);
    await mkdir(this.paths.bin, { recursive: true, mode: 0o755 });
    const hostConfig = await readFile("/etc/docker/daemon.json", "utf8").catch(() => undefined);
    await writeFile(
      this.paths.config,
      `${JSON.stringify(engineConfig(hostConfig, this.options.insecureRegistries), null, 2)}\n`,
      { mode: 0o600 },
    );
    const blocked = await untraversable(join(await realpath(this.paths.root), "data"), root);
    if (blocked) {
      throw new CvmError("UNAVAILABLE", `The remapped root (uid ${root.uid}) cannot traverse ${blocked}`, {
        detail: `cvm's engine keeps its data under ${this.paths.root}; allow search on ${blocked} (chmod o+x ${blocked}).`,
      });
    }
  }

  /** Links `<dataDir>/engine` to a relocated root when the data dir's ancestors are closed to the remapped root. */
  private async placeRoot(root: RemappedRoot): Promise<void> {
    if (await lstat(this.paths.root).catch(() => undefined)) return;
    const dataDir = dirname(this.paths.root);
    await mkdir(dataDir, { recursive: true });
    const blocked = await untraversable(this.paths.root, root);
    if (!blocked) return;
    const relocated = relocatedEngineRoot(dataDir);
    await mkdir(relocated, { recursive: true });
    await chmod(relocatedEnginesDir, 0o711);
    await symlink(relocated, this.paths.root);
    this.logger.info(
      { engine: relocated, blocked },
      "the data dir is closed to the remapped root: the engine lives elsewhere",
    );
  }

  private async waitForPing(timeoutMs: number, gaveUp: () => boolean = () => false): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (let wait = 10; Date.now() < deadline && !gaveUp(); wait = Math.min(wait * 2, 200)) {
      if (await ping(this.docker)) return true;
      await sleep(wait);
    }
    return false;
  }

  private async terminate(pid: number, timeoutMs: number): Promise<void> {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      return;
    }
    const deadline = Date.now() + timeoutMs;
    while (alive(pid) && Date.now() < deadline) await sleep(50);
    if (alive(pid)) process.kill(pid, "SIGKILL");
  }

  /**
   * dockerd bind-mounts its remapped data root onto itself (for mount
   * propagation) and can leave that mount behind when it stops; nothing of
   * the engine should stay mounted once it is down.
   */
  private async unmountLeftovers(): Promise<void> {
    const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
    // The mount table names real paths; the engine's root may be a link to a relocated one.
    const root = await realpath(this.paths.root).catch(() => this.paths.root);
    const points = mountinfo
      .split("\n")
      .map((line) => line.split(" ")[4])
      .filter((point): point is string => !!point && point.startsWith(`${root}/`))
      .sort((a, b) => b.length - a.length);
    for (const point of points) {
      await run("umount", ["-l", point]).catch((error) => this.logger.warn({ err: error, point }, "could not unmount"));
    }
  }

  /** The runtimes the engine lists (`docker info` Runtimes). */
  async runtimes(): Promise<string[]> {
    const docker = await this.ensure();
    const info = (await docker.info()) as { Runtimes?: Record<string, unknown> };
    return Object.keys(info.Runtimes ?? {});
  }

  /**
   * Stops the engine if this process owns it (started it, or took it over
   * from an owner that died); an adopted one belongs to whoever started it. Running CVMs keep running (--live-restore) and keep
   * their bridge; with none left, nothing of the engine stays mounted and its
   * network goes too.
   */
  async close(): Promise<void> {
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.healthTimer = undefined;
    if (!this.startedHere) return;
    const running = await this.docker.listContainers().catch(() => []);
    const pid = await readPid(this.paths.pidfile);
    if (pid) await this.terminate(pid, 30_000);
    if (running.length === 0) {
      await this.unmountLeftovers();
      if (this.network) await removeNetwork(this.network);
    } else {
      this.logger.info({ running: running.length }, "cvm engine stopped; its CVMs keep running (live restore)");
    }
    this.network = undefined;
    this.startedHere = false;
    this.lastHealthy = 0;
  }
}
