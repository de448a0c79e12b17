/**
 * The writable sysfs a userns CVM needs to mount sysfs again (gate/cvm-gate.c
 * explains the kernel's rule): one per engine, mounted on the node under the
 * engine's directory and bound read-only into each CVM at /.cvm/sysfs.
 *
 * It belongs to a network namespace of its own with nothing in it, so it
 * shows only what any sysfs shows (the device tree, the CVM's own /sys has
 * it too), never the node's network interfaces. It has no mounts under it:
 * the engine mounts a running container's binds again for its archive API
 * and unmounts them after, and a bind with mounts beneath it would be left
 * behind inside the CVM (the node's own /sys, with its cgroup mounts, was).
 * The engine unmounts it with its other leftovers when it stops with no CVMs
 * (engine.ts).
 */

import { execFile } from "node:child_process";
import { mkdir, readFile, realpath } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { CvmError } from "../core/errors.js";

const run = promisify(execFile);

/** Whether `path` is a mount point of a writable sysfs in this mount namespace. */
export function isWritableSysfsMount(mountinfo: string, path: string): boolean {
  return mountinfo.split("\n").some((line) => {
    const [mountFields, fsFields] = line.split(" - ");
    if (!fsFields) return false;
    const [type, , superOptions = ""] = fsFields.split(" ");
    const options = mountFields.split(" ")[5] ?? "";
    return (
      mountFields.split(" ")[4] === path &&
      type === "sysfs" &&
      options.split(",").includes("rw") &&
      superOptions.split(",").includes("rw")
    );
  });
}

/** Mounts the reference once per engine (kept across server restarts); returns its node path. */
export async function ensureSysfsReference(engineRoot: string): Promise<string> {
  const path = join(await realpath(engineRoot), "sysfs");
  if (isWritableSysfsMount(await readFile("/proc/self/mountinfo", "utf8"), path)) return path;
  await mkdir(path, { recursive: true });
  try {
    // A fresh network namespace gives a sysfs super block of its own; the mount stays in the node's mount namespace.
    await run("unshare", ["--net", "--", "mount", "-t", "sysfs", "-o", "rw,nosuid,nodev,noexec", "cvm-sysfs", path]);
  } catch (error) {
    throw new CvmError("UNAVAILABLE", "Could not mount the sysfs CVMs need for nested containers", {
      detail: `unshare --net mount -t sysfs ${path}: ${(error as Error).message}`,
      cause: error,
    });
  }
  return path;
}
