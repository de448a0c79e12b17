/**
 * An environment's disks of its own: its / (a CVM's writable layer), its
 * /home and its inner Docker's data (/var/lib/docker), each an ext4
 * filesystem in a sparse file of the environment's diskGiB, loop-mounted on
 * the node. Writing past the size fails with ENOSPC inside the environment
 * instead of filling the node's disk; Docker's local volumes have no size at
 * all, and overlay2 limits a writable layer only on a data root with project
 * quotas, which many kernels (this project's machines among them) and
 * filesystems lack. Used for CVMs (all three, cvm's engine) and for standard
 * environments (home, when the host's engine runs on this machine).
 *
 * /var/lib/docker is bound into the CVM from the mount. /home is a named
 * volume whose device is the disk's `home` directory, so the engine still
 * copies the image's /home into it the first time, as into any volume. / is
 * the container's overlay2 layer directory itself (its upper and work
 * directories, which must share one mount): the disk is filled with what the
 * engine put there and mounted over it before the container first starts,
 * and unmounted before the engine removes the container.
 * No nosuid/nodev: inside a user namespace those flags are locked onto every
 * bind made from the mount, and BuildKit's read-only binds then fail with
 * EPERM. Neither protects anything here: the mount is reachable on the node
 * only through cvm's root-only directories, and a CVM cannot make device
 * nodes nor setuid files for anyone but its own unprivileged range.
 * The filesystem's root belongs to the environment's root (the CVM's remapped
 * root) from mkfs on; ext4 has d_type, so an inner dockerd gets overlay2.
 * Mounted with `discard`, so space freed inside is returned to the node.
 * mkfs takes 0.05 to 0.2 s per disk and a CVM has three, so spares of the
 * sizes and owners last used are made ahead, off the build's path, and a new
 * disk is a spare's rename.
 */

import { execFile } from "node:child_process";
import { chown, mkdir, readFile, rename, rm, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type Dockerode from "dockerode";
import { labels } from "../docker/labels.js";

const run = promisify(execFile);

export type DiskKind = "docker" | "home" | "root";

export interface EnvironmentDisk {
  image: string;
  mountPoint: string;
  /** What is bound or given as the volume's device: the mount itself, or its `home` directory. */
  source: string;
}

export function diskPaths(disksDir: string, environmentId: string, kind: DiskKind): EnvironmentDisk {
  const mountPoint = join(disksDir, `cvm-${kind}-${environmentId}`);
  return {
    image: join(disksDir, `cvm-${kind}-${environmentId}.ext4`),
    mountPoint,
    // A directory of its own, empty at first (ext4's root holds lost+found), so the image's /home is copied in.
    source: kind === "home" ? join(mountPoint, "home") : mountPoint,
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

/**
 * Runs a few commands in one shell, each given its values as arguments
 * ($1...), never in its text: a process started from the server costs it a
 * few ms of its own CPU, and twenty CVMs started at once start hundreds.
 */
async function inOneShell(script: string, values: string[]): Promise<void> {
  await run("sh", ["-ec", script, "sh", ...values]);
}

/** A sparse file of the size with an empty ext4 filesystem on it, whose root the owner owns. */
async function makeDisk(path: string, sizeGiB: number, owner: { uid: number; gid: number }): Promise<void> {
  const partial = `${path}.${process.pid}.${Math.random().toString(36).slice(2, 8)}.partial`;
  try {
    await inOneShell('truncate --size "$1" "$2"; mkfs.ext4 -q -F -m 0 -E "$3" "$2"', [
      `${Math.ceil(sizeGiB * 1024)}M`,
      partial,
      `root_owner=${owner.uid}:${owner.gid},lazy_itable_init=1,lazy_journal_init=1`,
    ]);
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/** Spares kept per size and owner: a CVM's home and inner Docker take two of its root's owner at once. */
const sparesPerKind = 2;

/** The spares of one size and owner, made and unmounted, waiting to be the next new disks (see takeSpare). */
function sparePaths(disksDir: string, sizeGiB: number, owner: { uid: number }): string[] {
  return Array.from({ length: sparesPerKind }, (_, i) =>
    join(disksDir, `spare-${Math.ceil(sizeGiB * 1024)}M-${owner.uid}-${i}.ext4`),
  );
}

/**
 * A spare of this size and owner becomes the disk (a rename: mkfs is off the
 * build's path); false when there is none. Two builds never get the same
 * spare: only one rename of it succeeds.
 */
async function takeSpare(disksDir: string, sizeGiB: number, owner: { uid: number }, path: string): Promise<boolean> {
  for (const spare of sparePaths(disksDir, sizeGiB, owner)) {
    if (
      await rename(spare, path).then(
        () => true,
        () => false,
      )
    )
      return true;
  }
  return false;
}

const sparesMaking = new Map<string, Promise<void>>();

/**
 * Makes the missing spares of this size and owner in the background, one
 * after the other, unless they are being made: twenty builds at once make
 * two spares, not twenty. A spare that fails to be made costs nothing but
 * the next disk's mkfs, which then says why.
 */
function makeSpares(disksDir: string, sizeGiB: number, owner: { uid: number; gid: number }): void {
  const key = `${disksDir}:${sizeGiB}:${owner.uid}`;
  if (sparesMaking.has(key)) return;
  const made = (async () => {
    for (const spare of sparePaths(disksDir, sizeGiB, owner)) {
      if (!(await exists(spare))) await makeDisk(spare, sizeGiB, owner);
    }
  })()
    .catch(() => undefined)
    .finally(() => sparesMaking.delete(key));
  sparesMaking.set(key, made);
}

/** Every spare being made now, for a supervisor that closes. */
export async function sparesSettled(): Promise<void> {
  await Promise.allSettled([...sparesMaking.values()]);
}

/** The disk's image, a spare's when there is one, and spares made again in the background. */
async function newDiskImage(
  disksDir: string,
  disk: EnvironmentDisk,
  sizeGiB: number,
  owner: { uid: number; gid: number },
): Promise<void> {
  if (!(await takeSpare(disksDir, sizeGiB, owner, disk.image))) await makeDisk(disk.image, sizeGiB, owner);
  makeSpares(disksDir, sizeGiB, owner);
}

/**
 * Makes (first time) and mounts (every start: mounts do not survive a node
 * reboot) the disk. Returns whether it was made now.
 */
export async function ensureDisk(
  disksDir: string,
  environmentId: string,
  kind: DiskKind,
  sizeGiB: number,
  owner: { uid: number; gid: number },
): Promise<{ disk: EnvironmentDisk; created: boolean }> {
  const disk = diskPaths(disksDir, environmentId, kind);
  await mkdir(disksDir, { recursive: true, mode: 0o710 });
  // As the engine's own directory: the environment's root may traverse it to reach its mount, nobody else.
  await chown(disksDir, 0, owner.gid);
  let created = false;
  if (!(await exists(disk.image))) {
    await newDiskImage(disksDir, disk, sizeGiB, owner);
    created = true;
  }
  await mkdir(disk.mountPoint, { recursive: true, mode: 0o700 });
  if (!(await isMounted(disk.mountPoint))) {
    await run("mount", ["-t", "ext4", "-o", "loop,discard", disk.image, disk.mountPoint]);
  }
  if (disk.source !== disk.mountPoint && !(await exists(disk.source))) {
    await mkdir(disk.source, { mode: 0o755 });
    await chown(disk.source, owner.uid, owner.gid);
  }
  return { disk, created };
}

/** Unmounts the disk (the loop device goes with it: mount -o loop sets autoclear) and, unless kept, deletes it. */
export async function releaseDisk(disksDir: string, environmentId: string, kind: DiskKind, keep: boolean) {
  const disk = diskPaths(disksDir, environmentId, kind);
  if (await isMounted(disk.mountPoint)) {
    await run("umount", [disk.mountPoint]).catch(() => run("umount", ["-l", disk.mountPoint]));
  }
  if (keep) return;
  await rmdir(disk.mountPoint).catch(() => undefined);
  await rm(disk.image, { force: true });
}

/** Mounts the environment's disks that exist again (after a node reboot), before its container starts. */
export async function remountDisks(
  disksDir: string,
  environmentId: string,
  sizeGiB: number,
  owner: { uid: number; gid: number },
  layerDir?: string,
): Promise<void> {
  for (const kind of ["docker", "home"] as const) {
    if (await exists(diskPaths(disksDir, environmentId, kind).image)) {
      await ensureDisk(disksDir, environmentId, kind, sizeGiB, owner);
    }
  }
  if (layerDir && (await exists(diskPaths(disksDir, environmentId, "root").image))) {
    await ensureRootDisk(disksDir, environmentId, sizeGiB, layerDir);
  }
}

/** The overlay2 layer directory of a container's writable layer: where its upper directory sits. */
export function layerDirOf(graphDriver: { Name?: string; Data?: Record<string, string> } | undefined) {
  const upper = graphDriver?.Name === "overlay2" ? graphDriver.Data?.UpperDir : undefined;
  return upper?.endsWith("/diff") ? upper.slice(0, -"/diff".length) : undefined;
}

/**
 * Puts the container's writable layer on a disk of its own: made the first
 * time with a copy of what the engine put in the layer directory, and mounted
 * over that directory (again after a node reboot).
 */
export async function ensureRootDisk(
  disksDir: string,
  environmentId: string,
  sizeGiB: number,
  layerDir: string,
): Promise<void> {
  if (await isMounted(layerDir)) return;
  const disk = diskPaths(disksDir, environmentId, "root");
  if (await exists(disk.image)) {
    await run("mount", ["-t", "ext4", "-o", "loop,discard", disk.image, layerDir]);
    return;
  }
  await mkdir(disksDir, { recursive: true, mode: 0o710 });
  await mkdir(disk.mountPoint, { recursive: true, mode: 0o700 });
  await newDiskImage(disksDir, disk, sizeGiB, { uid: 0, gid: 0 });
  try {
    // Filled through a mount of its own, then mounted over the layer directory.
    await inOneShell(
      'mount -t ext4 -o loop,discard "$1" "$2"; cp -a "$3/." "$2/"; umount "$2"; mount -t ext4 -o loop,discard "$1" "$3"',
      [disk.image, disk.mountPoint, layerDir],
    );
  } catch (error) {
    // Half filled, it would hide the layer at the next try's mount: the next try makes it again.
    if (await isMounted(disk.mountPoint)) await run("umount", ["-l", disk.mountPoint]).catch(() => undefined);
    if (!(await isMounted(layerDir))) await rm(disk.image, { force: true });
    throw error;
  } finally {
    await rmdir(disk.mountPoint).catch(() => undefined);
  }
}

/** Unmounts the writable layer's disk from the layer directory and deletes it, before the engine removes the container. */
export async function releaseRootDisk(disksDir: string, environmentId: string, layerDir?: string): Promise<void> {
  if (layerDir && (await isMounted(layerDir))) {
    await run("umount", [layerDir]).catch(() => run("umount", ["-l", layerDir]));
  }
  await releaseDisk(disksDir, environmentId, "root", false);
}

/** The request for a named volume whose data is the disk's home directory. */
export function diskVolumeOptions(disk: EnvironmentDisk): { Driver: string; DriverOpts: Record<string, string> } {
  return { Driver: "local", DriverOpts: { type: "none", o: "bind", device: disk.source } };
}

/**
 * Removes a volume of a disk of its own; answers false when the engine keeps
 * it. An engine restarted under live restore counts the local driver's mount
 * of a then running container's volume once more than it is held, and refuses
 * the volume's removal ("volume has active mounts") after the container is
 * gone, with force too, until it restarts. The disk under it is released all
 * the same; the record, which then holds no data, stays in that engine
 * until its next start sweeps it (sweepDiskVolumes).
 */
export async function removeDiskVolume(docker: Dockerode, name: string): Promise<boolean> {
  try {
    await docker.getVolume(name).remove();
    return true;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return true;
    if (!/active mounts/.test((error as Error).message)) throw error;
    return false;
  }
}

/** The disk a volume of a disk of its own is named for: cvm-docker-ID or cvm-home-ID. */
function diskOfVolume(name: string): { environmentId: string; kind: DiskKind } | undefined {
  const match = /^cvm-(docker|home)-(.+)$/.exec(name);
  return match ? { kind: match[1] as DiskKind, environmentId: match[2] } : undefined;
}

/**
 * At an engine's start: removes the records of disk volumes that no
 * container uses and whose disk is gone, those an earlier run of the engine
 * refused to remove (removeDiskVolume); a fresh engine counts no lost mounts.
 * A volume whose disk is still there (a home kept for the environment's next
 * build) or that holds its data itself (made before disks of their own) stays.
 */
export async function sweepDiskVolumes(docker: Dockerode, disksDir: string): Promise<string[]> {
  const listed = await docker.listVolumes({ filters: { dangling: ["true"], label: [labels.environment] } });
  const swept: string[] = [];
  for (const volume of listed.Volumes ?? []) {
    const disk = diskOfVolume(volume.Name);
    const device = (volume.Options as Record<string, string> | null | undefined)?.device;
    if (!disk || !device || volume.Labels?.[labels.environment] !== disk.environmentId) continue;
    if (!device.startsWith(`${disksDir}/`)) continue;
    if (await exists(diskPaths(disksDir, disk.environmentId, disk.kind).image)) continue;
    if (await removeDiskVolume(docker, volume.Name)) swept.push(volume.Name);
  }
  return swept;
}
