/**
 * The inner Docker's data (/var/lib/docker) on a disk of its own: an ext4
 * filesystem in a sparse file, loop-mounted on the node and bound into the
 * CVM. Its size is the environment's diskGiB, so images and containers inside
 * cannot fill the node's disk; Docker's local volumes have no size at all.
 * No nosuid/nodev: inside a user namespace those flags are locked onto every
 * bind made from the mount, and BuildKit's read-only binds then fail with
 * EPERM. Neither protects anything here: the mount is reachable on the node
 * only through the engine's root-only directory, and a CVM cannot make device
 * nodes nor setuid files for anyone but its own unprivileged range.
 * The filesystem's root belongs to the CVM's remapped root from mkfs on, and
 * the inner dockerd gets overlay2 on it (ext4 has d_type). Mounted with
 * `discard`, so space freed inside is returned to the node. mkfs takes 0.05 to
 * 0.2 s, so a spare of the last size used is made ahead, off the build's path.
 */

import { execFile } from "node:child_process";
import { chown, mkdir, readFile, rename, rm, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface DockerDisk {
  image: string;
  mountPoint: string;
}

export function dockerDiskPaths(disksDir: string, environmentId: string): DockerDisk {
  return {
    image: join(disksDir, `cvm-docker-${environmentId}.ext4`),
    mountPoint: join(disksDir, `cvm-docker-${environmentId}`),
  };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export async function isMounted(path: string): Promise<boolean> {
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  return mountinfo.split("\n").some((line) => line.split(" ")[4] === path);
}

/** A made, unmounted disk of one size and owner, waiting to be the next new one's (see takeSpare). */
function sparePath(disksDir: string, sizeGiB: number, owner: { uid: number }): string {
  return join(disksDir, `spare-${Math.ceil(sizeGiB * 1024)}M-${owner.uid}.ext4`);
}

/** A sparse file of the size with an empty ext4 filesystem on it, whose root the CVM's root owns. */
async function makeDisk(path: string, sizeGiB: number, owner: { uid: number; gid: number }): Promise<void> {
  const partial = `${path}.${process.pid}.${Math.random().toString(36).slice(2, 8)}.partial`;
  try {
    await run("truncate", ["--size", `${Math.ceil(sizeGiB * 1024)}M`, partial]);
    await run("mkfs.ext4", [
      "-q",
      "-F",
      "-m",
      "0",
      "-E",
      `root_owner=${owner.uid}:${owner.gid},lazy_itable_init=1,lazy_journal_init=1`,
      partial,
    ]);
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/**
 * The spare of this size becomes the disk (a rename: mkfs is off the build's
 * path); false when there is none. Two builds never get the same spare: only
 * one rename of it succeeds.
 */
async function takeSpare(disksDir: string, sizeGiB: number, owner: { uid: number }, path: string): Promise<boolean> {
  return rename(sparePath(disksDir, sizeGiB, owner), path).then(
    () => true,
    () => false,
  );
}

const sparesMaking = new Map<string, Promise<void>>();

/**
 * Makes a spare disk of this size in the background, unless one exists or is
 * being made: the next new disk of the size is then a rename. One at a time
 * per size, so twenty builds at once make one spare, not twenty.
 */
export function makeSpareDisk(disksDir: string, sizeGiB: number, owner: { uid: number; gid: number }): Promise<void> {
  const path = sparePath(disksDir, sizeGiB, owner);
  const making = sparesMaking.get(path);
  if (making) return making;
  const made = (async () => {
    if (!(await exists(path))) await makeDisk(path, sizeGiB, owner);
  })().finally(() => sparesMaking.delete(path));
  sparesMaking.set(path, made);
  return made;
}

/** Every spare being made now, for a supervisor that closes. */
export async function sparesSettled(): Promise<void> {
  await Promise.allSettled([...sparesMaking.values()]);
}

/**
 * Makes (first time: a spare's rename, else mkfs) and mounts (every start:
 * mounts do not survive a node reboot) the disk. Returns whether it was made now.
 */
export async function ensureDockerDisk(
  disksDir: string,
  environmentId: string,
  sizeGiB: number,
  owner: { uid: number; gid: number },
): Promise<{ disk: DockerDisk; created: boolean }> {
  const disk = dockerDiskPaths(disksDir, environmentId);
  await mkdir(disksDir, { recursive: true, mode: 0o710 });
  // As the engine's own directory: the remapped root may traverse it to reach its mount, nobody else.
  await chown(disksDir, 0, owner.gid);
  let created = false;
  if (!(await exists(disk.image))) {
    if (!(await takeSpare(disksDir, sizeGiB, owner, disk.image))) await makeDisk(disk.image, sizeGiB, owner);
    created = true;
  }
  await mkdir(disk.mountPoint, { recursive: true, mode: 0o700 });
  if (!(await isMounted(disk.mountPoint))) {
    await run("mount", ["-t", "ext4", "-o", "loop,discard", disk.image, disk.mountPoint]);
  }
  return { disk, created };
}

/** Unmounts the disk (the loop device goes with it: mount -o loop sets autoclear) and, unless kept, deletes it. */
export async function releaseDockerDisk(disksDir: string, environmentId: string, keep: boolean): Promise<void> {
  const disk = dockerDiskPaths(disksDir, environmentId);
  if (await isMounted(disk.mountPoint)) {
    await run("umount", [disk.mountPoint]).catch(() => run("umount", ["-l", disk.mountPoint]));
  }
  if (keep) return;
  await rmdir(disk.mountPoint).catch(() => undefined);
  await rm(disk.image, { force: true });
}
