/**
 * The node's kernel limits cvm reads and raises. Per-user limits are raised
 * when cvm's engine starts. Every
 * CVM's root is the same unprivileged uid on the node (userns-remap maps them
 * all to one range), so limits the kernel counts per user are shared by all
 * CVMs together. With the defaults, about eight CVMs exhaust the inotify
 * instances (systemd, journald, logind and dockerd each take several):
 * systemd's path units fail ("degraded") and `systemctl` cannot watch for
 * boot to finish; nested containers' session keyrings exhaust the keys quota.
 * Only ever raised, never lowered.
 */

import { readFile, writeFile } from "node:fs/promises";
import type { NodePidCapacity } from "../core/pids-limit.js";

export interface NodeLimit {
  key: string;
  minimum: number;
  why: string;
}

export const nodeLimits: NodeLimit[] = [
  { key: "fs.inotify.max_user_instances", minimum: 8192, why: "systemd and dockerd in every CVM, one uid" },
  { key: "fs.inotify.max_user_watches", minimum: 1_048_576, why: "systemd and dockerd in every CVM, one uid" },
  { key: "kernel.keys.maxkeys", minimum: 20_000, why: "a session keyring per nested container, one uid" },
  { key: "kernel.keys.maxbytes", minimum: 2_000_000, why: "a session keyring per nested container, one uid" },
];

function procPath(key: string): string {
  return `/proc/sys/${key.replaceAll(".", "/")}`;
}

export interface LimitChange {
  key: string;
  from: number;
  to?: number;
  /** Why it could not be raised (read-only /proc/sys, no privilege). */
  problem?: string;
}

/** Raises each limit below its minimum; returns what changed or could not. */
export async function raiseNodeLimits(limits = nodeLimits): Promise<LimitChange[]> {
  const changes: LimitChange[] = [];
  for (const { key, minimum } of limits) {
    const current = Number((await readFile(procPath(key), "utf8").catch(() => "")).trim());
    if (!Number.isFinite(current) || current >= minimum) continue;
    try {
      await writeFile(procPath(key), `${minimum}\n`);
      changes.push({ key, from: current, to: minimum });
    } catch (error) {
      changes.push({ key, from: current, problem: (error as Error).message });
    }
  }
  return changes;
}

/** kernel.pid_max and kernel.threads-max, as this machine (or this Pod) sees them. */
export async function readNodePidCapacity(): Promise<NodePidCapacity> {
  const read = async (key: string) => {
    const value = Number((await readFile(procPath(key), "utf8").catch(() => "")).trim());
    return Number.isFinite(value) && value > 0 ? value : undefined;
  };
  return { pidMax: await read("kernel.pid_max"), threadsMax: await read("kernel.threads-max") };
}
