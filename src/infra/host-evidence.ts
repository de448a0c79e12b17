/**
 * Reading the machine cvm runs on: files under /proc, /sys and /etc, the
 * engine's API, and two real attempts (a delegated cgroup, an overlay mount
 * inside a user namespace). Every reader returns what it saw verbatim, so the
 * judges in local-checks.ts can quote it.
 */

import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chown, mkdir, mkdtemp, readFile, rm, rmdir, stat, statfs } from "node:fs/promises";
import { release, tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { defaultDockerHost, dockerClient } from "../docker/index.js";
import { apparmorProfile, apparmorProfileName } from "../supervisor/apparmor.js";
import { errorText } from "./check.js";

const run = promisify(execFile);

/** The contents of a file, trimmed, or undefined when it does not exist or cannot be read. */
async function readOptional(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- kernel, OS

export interface OsRelease {
  /** `ID` from /etc/os-release, such as `ubuntu` or `debian`. */
  id: string;
  versionId: string;
  prettyName: string;
  /** The lines read, verbatim, for evidence. */
  source: string;
}

export function parseOsRelease(text: string, source = "/etc/os-release"): OsRelease {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) fields.set(match[1], match[2].replace(/^"(.*)"$/, "$1"));
  }
  const id = fields.get("ID") ?? "";
  const versionId = fields.get("VERSION_ID") ?? "";
  const prettyName = fields.get("PRETTY_NAME") ?? "";
  return {
    id,
    versionId,
    prettyName,
    source: `${source}: ID=${id} VERSION_ID=${versionId} PRETTY_NAME="${prettyName}"`,
  };
}

export async function readOsRelease(): Promise<OsRelease | undefined> {
  for (const path of ["/etc/os-release", "/usr/lib/os-release"]) {
    const text = await readOptional(path);
    if (text !== undefined) return parseOsRelease(text, path);
  }
  return undefined;
}

export function readKernelRelease(): string {
  return release();
}

// ---------------------------------------------------------------- user namespaces

export interface UserNamespaceEvidence {
  /** /proc/sys/user/max_user_namespaces, verbatim; undefined when absent (a kernel without CONFIG_USER_NS). */
  maxUserNamespaces?: string;
  /** kernel.unprivileged_userns_clone, a Debian/Ubuntu patch; absent on most kernels. */
  unprivilegedClone?: string;
  /** kernel.apparmor_restrict_unprivileged_userns (Ubuntu 23.10 and newer). */
  apparmorRestrict?: string;
}

export async function readUserNamespaces(): Promise<UserNamespaceEvidence> {
  return {
    maxUserNamespaces: await readOptional("/proc/sys/user/max_user_namespaces"),
    unprivilegedClone: await readOptional("/proc/sys/kernel/unprivileged_userns_clone"),
    apparmorRestrict: await readOptional("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
  };
}

// ---------------------------------------------------------------- subordinate ids

export interface SubordinateRange {
  user: string;
  start: number;
  count: number;
  line: string;
}

export interface SubordinateIdEvidence {
  /** Every range in /etc/subuid and /etc/subgid; undefined when the file is absent. */
  subuid?: SubordinateRange[];
  subgid?: SubordinateRange[];
}

export function parseSubordinateIds(text: string): SubordinateRange[] {
  const ranges: SubordinateRange[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const match = /^([^:#\s]+):(\d+):(\d+)$/.exec(line);
    if (match) ranges.push({ user: match[1], start: Number(match[2]), count: Number(match[3]), line });
  }
  return ranges;
}

export async function readSubordinateIds(): Promise<SubordinateIdEvidence> {
  const subuid = await readOptional("/etc/subuid");
  const subgid = await readOptional("/etc/subgid");
  return {
    subuid: subuid === undefined ? undefined : parseSubordinateIds(subuid),
    subgid: subgid === undefined ? undefined : parseSubordinateIds(subgid),
  };
}

// ---------------------------------------------------------------- cgroups

export interface CgroupMount {
  mountPoint: string;
  fsType: "cgroup" | "cgroup2";
  /** Mount options, which for v1 name the controllers (and `name=systemd`). */
  options: string;
  line: string;
}

export interface CgroupEvidence {
  mounts: CgroupMount[];
  /** cgroup.controllers of the unified hierarchy, when one is mounted. */
  unifiedControllers?: string;
}

export function parseCgroupMounts(procMounts: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of procMounts.split("\n")) {
    const [, mountPoint, fsType, options] = line.split(" ");
    if (fsType === "cgroup" || fsType === "cgroup2") mounts.push({ mountPoint, fsType, options, line });
  }
  return mounts;
}

export async function readCgroups(): Promise<CgroupEvidence> {
  const mounts = parseCgroupMounts((await readOptional("/proc/self/mounts")) ?? "");
  const unified = mounts.find((m) => m.fsType === "cgroup2");
  return {
    mounts,
    unifiedControllers: unified ? await readOptional(join(unified.mountPoint, "cgroup.controllers")) : undefined,
  };
}

export interface DelegationAttempt {
  /** The hierarchy's mount point. */
  hierarchy: string;
  /** What happened, step by step, with errors verbatim. */
  outcome: string;
  ok: boolean;
}

/**
 * Really delegate: create a child cgroup in every hierarchy, hand it to the
 * remapped root (as the supervisor does before a CVM's init runs), check the
 * owner took, and remove it again.
 */
export async function tryCgroupDelegation(mounts: CgroupMount[], owner: number): Promise<DelegationAttempt[]> {
  const attempts: DelegationAttempt[] = [];
  for (const mount of mounts) {
    const dir = join(mount.mountPoint, `cvm-doctor-${process.pid}-${randomBytes(4).toString("hex")}`);
    let step = "mkdir";
    try {
      await mkdir(dir);
      step = "chown";
      await chown(dir, owner, owner);
      const procs = join(dir, "cgroup.procs");
      await chown(procs, owner, owner);
      const owned = await stat(procs);
      if (owned.uid !== owner) throw new Error(`cgroup.procs is owned by ${owned.uid} after chown to ${owner}`);
      step = "rmdir";
      await rmdir(dir);
      attempts.push({
        hierarchy: mount.mountPoint,
        ok: true,
        outcome: `created, chowned to ${owner}:${owner}, removed`,
      });
    } catch (error) {
      await rmdir(dir).catch(() => undefined);
      attempts.push({ hierarchy: mount.mountPoint, ok: false, outcome: `${step} failed: ${errorText(error)}` });
    }
  }
  return attempts;
}

// ---------------------------------------------------------------- overlay in a user namespace

export interface OverlayAttempt {
  command: string;
  ok: boolean;
  /** stderr (or the spawn error) verbatim when it failed. */
  output: string;
}

/**
 * Really mount overlay inside a fresh user namespace, as an inner dockerd
 * does for overlay2. The mount dies with the namespace when the command exits.
 */
export async function tryOverlayInUserNamespace(): Promise<OverlayAttempt> {
  const base = await mkdtemp(join(tmpdir(), "cvm-doctor-overlay-"));
  try {
    const [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map((d) => join(base, d));
    await Promise.all([lower, upper, work, merged].map((d) => mkdir(d)));
    const args = [
      "--user",
      "--map-root-user",
      "--mount",
      "mount",
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${lower},upperdir=${upper},workdir=${work}`,
      merged,
    ];
    const command = `unshare ${args.join(" ")}`;
    try {
      await run("unshare", args, { timeout: 10_000 });
      return { command, ok: true, output: "" };
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr?.trim();
      return { command, ok: false, output: stderr || errorText(error) };
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the engine

export interface EngineEvidence {
  host: string;
  /** Why the engine could not be asked, verbatim. */
  error?: string;
  version?: string;
  apiVersion?: string;
  runtimes?: string[];
  defaultRuntime?: string;
  dockerRootDir?: string;
  cgroupVersion?: string;
  cgroupDriver?: string;
  securityOptions?: string[];
  kernelVersion?: string;
  operatingSystem?: string;
}

export async function readEngine(host = defaultDockerHost): Promise<EngineEvidence> {
  try {
    const docker = dockerClient(host, { timeout: 10_000 });
    const [info, version] = await Promise.all([docker.info(), docker.version()]);
    return {
      host,
      version: version.Version,
      apiVersion: version.ApiVersion,
      runtimes: Object.keys(info.Runtimes ?? {}).sort(),
      defaultRuntime: info.DefaultRuntime,
      dockerRootDir: info.DockerRootDir,
      cgroupVersion: info.CgroupVersion,
      cgroupDriver: info.CgroupDriver,
      securityOptions: info.SecurityOptions,
      kernelVersion: info.KernelVersion,
      operatingSystem: info.OperatingSystem,
    };
  } catch (error) {
    return { host, error: errorText(error) };
  }
}

// ---------------------------------------------------------------- AppArmor, SELinux

export interface SecurityModuleEvidence {
  /** /sys/module/apparmor/parameters/enabled: `Y` or `N`; undefined when AppArmor is not built in. */
  apparmorEnabled?: string;
  /** /sys/kernel/security/apparmor/profiles; undefined when securityfs does not show it. */
  apparmorProfiles?: string;
  /** Where apparmor_parser was found on PATH, if anywhere (the engine needs it to load its own profile). */
  apparmorParser?: string;
  /** /sys/fs/selinux/enforce: `1` enforcing, `0` permissive; undefined without SELinux. */
  selinuxEnforce?: string;
}

async function onPath(name: string): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? "").split(delimiter).concat(["/sbin", "/usr/sbin"]);
  for (const dir of dirs) {
    const path = join(dir, name);
    if (
      await stat(path).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return path;
  }
  return undefined;
}

export async function readSecurityModules(): Promise<SecurityModuleEvidence> {
  return {
    apparmorEnabled: await readOptional("/sys/module/apparmor/parameters/enabled"),
    apparmorProfiles: await readOptional("/sys/kernel/security/apparmor/profiles"),
    apparmorParser: await onPath("apparmor_parser"),
    selinuxEnforce: await readOptional("/sys/fs/selinux/enforce"),
  };
}

export interface ProfileCompile {
  command: string;
  ok: boolean;
  /** The parser's error, verbatim, when it failed. */
  output: string;
}

export interface AppArmorProfileEvidence extends SecurityModuleEvidence {
  /** Compiling cvm's profile without loading it, tried when AppArmor is on and the profile is not loaded yet. */
  compile?: ProfileCompile;
}

/** Compiles the supervisor's profile with the kernel left alone (-Q: skip kernel load, -K: skip the cache). */
export async function compileAppArmorProfile(parser: string, profile = apparmorProfile()): Promise<ProfileCompile> {
  const command = `${parser} --skip-kernel-load --skip-cache`;
  return new Promise((resolve) => {
    const child = execFile(parser, ["--skip-kernel-load", "--skip-cache"], { timeout: 20_000 }, (error, _out, stderr) =>
      resolve({ command, ok: !error, output: error ? stderr.trim() || errorText(error) : "" }),
    );
    // A parser that exits before reading still answers through its exit status.
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(profile);
  });
}

export async function readAppArmorProfile(): Promise<AppArmorProfileEvidence> {
  const modules = await readSecurityModules();
  const loaded = modules.apparmorProfiles?.split("\n").some((l) => l.startsWith(`${apparmorProfileName} `));
  if (modules.apparmorEnabled !== "Y" || loaded || !modules.apparmorParser) return modules;
  return { ...modules, compile: await compileAppArmorProfile(modules.apparmorParser) };
}

// ---------------------------------------------------------------- disk

export interface DiskEvidence {
  path: string;
  freeBytes?: number;
  totalBytes?: number;
  error?: string;
}

export async function readDiskFree(path: string): Promise<DiskEvidence> {
  try {
    const fs = await statfs(path);
    return { path, freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
  } catch (error) {
    return { path, error: errorText(error) };
  }
}
