/**
 * Where a transfer's time goes: the CPU seconds each kind of process spent
 * while it ran (curl, the sender inside, the cvm CLI, the server, the bridge
 * that splices) and the kernel's softirq time, read from /proc every 200 ms.
 * A transfer on this machine is bound by CPU (2 cores), so the CPU seconds
 * a path costs per GiB say what a hop costs, and they hold under load where
 * the wall-clock figure alone would not.
 */

import { readdirSync, readFileSync } from "node:fs";

/** utime + stime of every process, by pid, with its name; in clock ticks. */
function processTimes(): Map<number, { name: string; ticks: number }> {
  const times = new Map<number, { name: string; ticks: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const name = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      // Fields 14 and 15 of stat(5): utime and stime; the slice starts at field 3.
      times.set(Number(entry), { name, ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // Gone between the listing and the read.
    }
  }
  return times;
}

/** The machine's softirq ticks (the network stack's own work, charged to no process). */
function softirqTicks(): number {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0].split(/\s+/);
  return Number(cpu[7]);
}

const ticksPerSecond = 100;

/**
 * Runs `work` while sampling; answers CPU seconds by the kind `kindOf` gives
 * each process (undefined: "other") and "softirq". A process that ends
 * between two samples loses at most its last 200 ms.
 */
export async function cpuTime<T>(kindOf: (pid: number, name: string) => string | undefined, work: () => Promise<T>) {
  const before = processTimes();
  const softirqBefore = softirqTicks();
  const seen = new Map<number, { name: string; ticks: number }>();
  const sample = () => {
    for (const [pid, now] of processTimes()) seen.set(pid, now);
  };
  const timer = setInterval(sample, 200);
  let result: T;
  try {
    result = await work();
  } finally {
    clearInterval(timer);
    sample();
  }
  const seconds: Record<string, number> = { softirq: (softirqTicks() - softirqBefore) / ticksPerSecond };
  for (const [pid, now] of seen) {
    const spent = (now.ticks - (before.get(pid)?.ticks ?? 0)) / ticksPerSecond;
    if (spent <= 0) continue;
    const kind = kindOf(pid, now.name) ?? "other";
    seconds[kind] = (seconds[kind] ?? 0) + spent;
  }
  return { result, seconds };
}

/** "curl 0.52 s, cli 0.90 s, ..." for the log. */
export function describeCpu(seconds: Record<string, number>): string {
  return Object.entries(seconds)
    .filter(([, s]) => s >= 0.01)
    .sort((a, b) => b[1] - a[1])
    .map(([name, s]) => `${name} ${s.toFixed(2)} s`)
    .join(", ");
}
