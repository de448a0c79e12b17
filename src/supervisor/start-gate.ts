/**
 * The start gate: a tiny static program (gate/cvm-gate.c) that is PID 1 of a
 * CVM until the supervisor releases it. It holds init back while the
 * container's cgroup directories are handed to its remapped root, then execs
 * the real init, which keeps PID 1. Released the other way, it becomes the
 * minimal init that reaps children, for images without /sbin/init.
 */

import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { CvmError } from "../core/errors.js";
import { ensureStaticBinary } from "../native/static-binary.js";

export const gateSource = fileURLToPath(new URL("./gate/cvm-gate.c", import.meta.url));

/** Where the gate is mounted in every CVM (read-only). */
export const gateMountPath = "/.cvm/cvm-gate";

/**
 * Where a userns CVM finds the engine's reference sysfs (read-only;
 * SYSFS_REFERENCE in gate/cvm-gate.c, sysfs-reference.ts). At release the
 * gate gives the CVM a writable sysfs super block of its own from it; it
 * stays for tools that unmount /sys to mount another (`ip netns exec`).
 */
export const sysfsReferencePath = "/.cvm/sysfs";

/** /proc/PID/comm of the gate while it holds, and of the reaper it becomes. */
export const gateComm = "cvm-gate";
export const reaperComm = "cvm-reaper";
/** The gate's name between its release signal and the exec (its mounts and masks are being made). */
export const openingComm = "cvm-gate-open";

/**
 * The container's command: hold, then mask `masks` for systemd, give its
 * units OMP_NUM_THREADS at `cpus` (rounded up), and exec `init` (when the
 * image has one).
 */
export function gateCommand(init: string, masks: readonly string[] = [], cpus?: number): string[] {
  return [
    "hold",
    ...(masks.length > 0 ? [`--mask=${masks.join(",")}`] : []),
    ...(cpus && cpus > 0 ? [`--cpus=${Math.ceil(cpus)}`] : []),
    init,
  ];
}

/** Compiles the gate once per source version into `binDir`. */
export async function ensureGateBinary(binDir: string): Promise<string> {
  return ensureStaticBinary(gateSource, binDir, "cvm-gate");
}

export type Release = "init" | "reaper";

const releaseSignal: Record<Release, NodeJS.Signals> = { init: "SIGUSR1", reaper: "SIGUSR2" };

async function comm(pid: number): Promise<string | undefined> {
  return (await readFile(`/proc/${pid}/comm`, "utf8").catch(() => undefined))?.trim();
}

export type GateState = "starting" | "held" | "opening" | "reaper" | "init" | "gone";

/**
 * What PID 1 of a CVM is now, from the node's side. The engine's start
 * returns before runc's init has exec'd the gate: until then PID 1 is
 * "runc:[2:INIT]", which is neither held nor released.
 */
export async function gateState(pid: number): Promise<GateState> {
  const name = await comm(pid);
  if (name === undefined) return "gone";
  if (name === gateComm) return "held";
  if (name === openingComm) return "opening";
  if (name === reaperComm) return "reaper";
  if (name === "runc" || name.startsWith("runc:")) return "starting";
  return "init";
}

/**
 * Releases the gate of the container whose PID 1 is `pid` (as the node sees
 * it). Released means: the gate was seen holding, then PID 1 became something
 * else. Before the gate runs, PID 1 is runc's own init under names that vary
 * ("runc:[2:INIT]", a re-executed copy of runc), so nothing but the gate's own
 * name counts as a sign. A signal reaches a namespace's init only once it has
 * a handler, so one sent before the gate installed its handler is lost:
 * repeat until PID 1 is no longer the holding gate. Once it has the signal
 * it says so ("opening"), and the release waits, sending nothing more, until
 * the exec: its mounts are made by then.
 */
export async function releaseGate(pid: number, how: Release, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seenHeld = false;
  for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
    const state = await gateState(pid);
    if (state === "gone") throw new CvmError("INTERNAL", "The CVM's init exited before it was released");
    if (state === "reaper" || (seenHeld && state !== "held" && state !== "opening")) return;
    if (Date.now() > deadline) {
      throw new CvmError("INTERNAL", `The CVM's start gate did not open within ${timeoutMs} ms (PID 1: ${state})`);
    }
    if (state === "opening") seenHeld = true;
    if (state === "held") {
      seenHeld = true;
      try {
        process.kill(pid, releaseSignal[how]);
      } catch {
        // Gone between the check and the signal: the next check says so.
      }
    }
    await sleep(wait);
  }
}

/** What the gate set up in a userns CVM at release, read from its mount table. */
export interface GateMounts {
  /** /sys is a sysfs whose super block is writable: nested privileged containers can mount sysfs. */
  nestable: boolean;
  /** The CVM has a binfmt_misc of its own (Linux 6.7 and newer). */
  binfmtMisc: boolean;
}

/** Reads a CVM's mount table (/proc/PID/mountinfo as the node sees it). */
export function gateMounts(mountinfo: string): GateMounts {
  const found: GateMounts = { nestable: false, binfmtMisc: false };
  for (const line of mountinfo.split("\n")) {
    const [mountFields, fsFields] = line.split(" - ");
    if (!fsFields) continue;
    const target = mountFields.split(" ")[4];
    const [type, , superOptions = ""] = fsFields.split(" ");
    // The last mount at /sys is the one seen; its super block options say whether it was made writable.
    if (target === "/sys") found.nestable = type === "sysfs" && superOptions.split(",").includes("rw");
    if (target === "/proc/sys/fs/binfmt_misc" && type === "binfmt_misc") found.binfmtMisc = true;
  }
  return found;
}
