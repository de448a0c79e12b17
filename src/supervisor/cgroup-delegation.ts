/**
 * Cgroup handoff: systemd as PID 1 of a CVM creates /init.scope and its
 * slices inside the container's own cgroup, which it can only do once that
 * cgroup's directories are owned by the container's (remapped) root. Without
 * that it stops at "Failed to create /init.scope control group: Permission
 * denied". The engine creates the directories when the container starts, so
 * this runs while the start gate holds init back.
 *
 * Only the directory and the files that delegation needs change owner (as in
 * systemd's own delegation: cgroup.procs, cgroup.threads, cgroup.subtree_control
 * on v2; cgroup.procs and tasks on v1). The limit files (memory.max,
 * memory.limit_in_bytes, cpu.max, ...) stay root's, so the CVM cannot raise its
 * own limits; sub-cgroups it creates are bounded by them.
 */

import { chown, readdir, readFile, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";

export interface CgroupMount {
  /** "cgroup2", or the v1 hierarchy's controllers ("memory", "cpu,cpuacct", "name=systemd"). */
  hierarchy: string;
  version: 1 | 2;
  mountPoint: string;
  /** The hierarchy path mounted there ("/" on the node; deeper inside a container's cgroup namespace). */
  root: string;
}

const v1Controllers = [
  "cpuset",
  "cpu",
  "cpuacct",
  "blkio",
  "memory",
  "devices",
  "freezer",
  "net_cls",
  "perf_event",
  "net_prio",
  "hugetlb",
  "pids",
  "rdma",
  "misc",
  "debug",
];

/** The cgroup mounts of a mount table (/proc/self/mountinfo). */
export function cgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const fields = left.split(" ");
    const [fsType, , superOptions = ""] = right.split(" ");
    const root = unescapeMountPath(fields[3]);
    const mountPoint = unescapeMountPath(fields[4]);
    if (fsType === "cgroup2") mounts.push({ hierarchy: "cgroup2", version: 2, mountPoint, root });
    if (fsType === "cgroup") {
      const controllers = superOptions
        .split(",")
        .filter((o) => o.startsWith("name=") || v1Controllers.includes(o))
        .sort();
      mounts.push({ hierarchy: controllers.join(","), version: 1, mountPoint, root });
    }
  }
  return mounts;
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

function sameControllers(a: string, b: string): boolean {
  return a.split(",").sort().join(",") === b.split(",").sort().join(",");
}

/**
 * The directories of a process's cgroups, one per mounted hierarchy (every v1
 * controller plus name=systemd; on v2 the one unified directory), from its
 * /proc/PID/cgroup and our mount table.
 */
export function cgroupDirectories(procCgroup: string, mounts: CgroupMount[]): string[] {
  const dirs: string[] = [];
  for (const line of procCgroup.split("\n")) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!match) continue;
    const [, id, controllers, path] = match;
    const mount =
      id === "0" && controllers === ""
        ? mounts.find((m) => m.version === 2)
        : mounts.find((m) => m.version === 1 && sameControllers(m.hierarchy, controllers));
    if (!mount) continue;
    if (path !== mount.root && !path.startsWith(mount.root === "/" ? "/" : `${mount.root}/`)) continue;
    const relative = mount.root === "/" ? path : path.slice(mount.root.length);
    const dir = join(mount.mountPoint, relative);
    if (!dirs.includes(dir)) dirs.push(dir);
  }
  return dirs;
}

/** The files delegation hands over besides the directory itself. */
export const delegatedFiles: Record<1 | 2, string[]> = {
  1: ["cgroup.procs", "tasks", "cgroup.clone_children", "notify_on_release"],
  2: ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"],
};

export interface Delegation {
  directories: string[];
}

/** Hands the cgroup directories of the container whose PID 1 is `pid` (node's view) to uid:gid. */
export async function delegateCgroups(pid: number, uid: number, gid: number): Promise<Delegation> {
  const [procCgroup, mountinfo] = await Promise.all([
    readFile(`/proc/${pid}/cgroup`, "utf8"),
    readFile("/proc/self/mountinfo", "utf8"),
  ]);
  const mounts = cgroupMounts(mountinfo);
  const directories = cgroupDirectories(procCgroup, mounts);
  if (directories.length === 0) throw new Error(`no cgroup directories found for pid ${pid}`);
  await Promise.all(
    directories.map(async (dir) => {
      const version = (await isCgroup2(dir, mounts)) ? 2 : 1;
      await chown(dir, uid, gid);
      await Promise.all(
        delegatedFiles[version].map((file) =>
          chown(join(dir, file), uid, gid).catch((error: NodeJS.ErrnoException) => {
            if (error.code !== "ENOENT") throw error;
          }),
        ),
      );
    }),
  );
  return { directories };
}

async function isCgroup2(dir: string, mounts: CgroupMount[]): Promise<boolean> {
  const mount = mounts
    .filter((m) => dir === m.mountPoint || dir.startsWith(`${m.mountPoint}/`))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0];
  return mount?.version === 2;
}

/** Where a container of cvm's engine has its cgroups (--cgroup-parent=/cvm, cgroupfs driver), on every hierarchy. */
export async function containerCgroupPaths(containerId: string, parent = "/cvm"): Promise<string[]> {
  const mounts = cgroupMounts(await readFile("/proc/self/mountinfo", "utf8"));
  const seen = new Set<string>();
  return mounts
    .filter((m) => m.root === "/")
    .map((m) => join(m.mountPoint, parent, containerId))
    .filter((p) => !seen.has(p) && seen.add(p) !== undefined);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Removes a cgroup tree bottom-up (only empty cgroups can be removed; one with a process stays and is reported). */
async function removeTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) if (entry.isDirectory()) await removeTree(join(dir, entry.name));
  await rmdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "ENOENT") throw error;
  });
}

/**
 * Removes what is left of a removed container's cgroups (the engine removes
 * its own directory; sub-cgroups systemd made inside can outlive it) and
 * returns what could not be removed.
 */
export async function removeContainerCgroups(containerId: string): Promise<string[]> {
  const left: string[] = [];
  for (const dir of await containerCgroupPaths(containerId)) {
    if (!(await exists(dir))) continue;
    await removeTree(dir).catch(() => undefined);
    if (await exists(dir)) left.push(dir);
  }
  return left;
}
