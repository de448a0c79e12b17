/**
 * How many processes and threads one environment may run (its cgroup's
 * pids.max). A fork bomb in one environment must stop there, not at the
 * node's own limit, where every environment and the node itself would fail
 * to fork. An admin sets the number (settings `limits.pids`); 0 sizes it to
 * the node: an eighth of what the node allows (the lower of kernel.pid_max
 * and kernel.threads-max), at least 1024, at most 32768.
 */

/** What the kernel allows on the node; absent values are read as the kernel's defaults. */
export interface NodePidCapacity {
  pidMax?: number;
  threadsMax?: number;
}

/** Linux's default kernel.pid_max on small machines. */
export const defaultPidMax = 32_768;

export function nodePidCeiling(node: NodePidCapacity): number {
  return Math.min(node.pidMax ?? defaultPidMax, node.threadsMax ?? Number.POSITIVE_INFINITY);
}

export function environmentPidsLimit(setting: number, node: NodePidCapacity): number {
  if (setting > 0) return setting;
  return Math.min(Math.max(Math.floor(nodePidCeiling(node) / 8), 1024), 32_768);
}

/** The build log's line for the limit. */
export function pidsLimitNote(setting: number, node: NodePidCapacity): string {
  const limit = environmentPidsLimit(setting, node);
  return setting > 0
    ? `processes: at most ${limit} (set by an admin)`
    : `processes: at most ${limit} (an eighth of the node's ${nodePidCeiling(node)})`;
}
