/**
 * What an environment uses against its limits, as its own cgroup and disks
 * say from inside: CPU (cores busy over a short interval, against the quota),
 * memory (less the page cache the kernel can drop, as `docker stats` counts
 * it, against the cgroup's limit), and the filesystems of /, /home and
 * /var/lib/docker. Parsing only; the probe runs through the provider's exec.
 */

export interface DiskUsage {
  /** The path asked about. */
  path: string;
  /** Where its filesystem is mounted. */
  mount: string;
  usedBytes: number;
  sizeBytes: number;
}

export interface Usage {
  cpu: { cores: number; limitCores?: number };
  memory: { usedBytes: number; limitBytes?: number };
  disks: DiskUsage[];
}

/** How long the probe waits between its two CPU readings. */
export const cpuSampleSeconds = 0.25;

/**
 * The probe: key/value lines from cgroup v2 or v1, two CPU readings
 * `cpuSampleSeconds` apart, then `df` of the paths. Plain POSIX sh and the
 * files themselves, so it runs in any image with a shell and df.
 */
export const usageProbe = `cg=/sys/fs/cgroup
if [ -f $cg/memory.current ]; then
  echo "memory $(cat $cg/memory.current)"; echo "memory_limit $(cat $cg/memory.max)"
  while read k v; do [ "$k" = inactive_file ] && echo "inactive $v"; done < $cg/memory.stat
  cpu() { while read k v; do [ "$k" = usage_usec ] && echo "$v"000; done < $cg/cpu.stat; }
  read quota period < $cg/cpu.max; echo "cpu_quota $quota $period"
else
  echo "memory $(cat $cg/memory/memory.usage_in_bytes)"; echo "memory_limit $(cat $cg/memory/memory.limit_in_bytes)"
  while read k v; do [ "$k" = total_inactive_file ] && echo "inactive $v"; done < $cg/memory/memory.stat
  cpu() { cat $cg/cpuacct/cpuacct.usage; }
  echo "cpu_quota $(cat $cg/cpu/cpu.cfs_quota_us) $(cat $cg/cpu/cpu.cfs_period_us)"
fi
echo "cpu_a $(cpu)"; sleep ${cpuSampleSeconds}; echo "cpu_b $(cpu)"
set --; for p in / /home /var/lib/docker; do [ -d "$p" ] && set -- "$@" "$p"; done
echo "paths $*"
echo df; df -P -B1 "$@" 2>/dev/null || df -P "$@"`;

/** Anything at or above this is "no limit" (the kernel's unlimited, rounded to pages). */
const unlimited = 2 ** 60;

export function parseUsage(text: string): Usage {
  const [head, df = ""] = text.split(/^df$/m);
  const values = new Map<string, string[]>();
  for (const line of head.split("\n")) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key) values.set(key, rest);
  }
  const number = (key: string, index = 0) => {
    const value = Number(values.get(key)?.[index]);
    return Number.isFinite(value) ? value : undefined;
  };
  const used = Math.max(0, (number("memory") ?? 0) - (number("inactive") ?? 0));
  const memoryLimit = number("memory_limit");
  const [quota, period] = [number("cpu_quota", 0), number("cpu_quota", 1)];
  const busyNs = Math.max(0, (number("cpu_b") ?? 0) - (number("cpu_a") ?? 0));
  return {
    cpu: {
      cores: Math.round((busyNs / (cpuSampleSeconds * 1e9)) * 100) / 100,
      ...(quota && quota > 0 && period ? { limitCores: quota / period } : {}),
    },
    memory: {
      usedBytes: used,
      ...(memoryLimit && memoryLimit < unlimited ? { limitBytes: memoryLimit } : {}),
    },
    disks: parseDf(df, values.get("paths") ?? []),
  };
}

/** `df -P` output, in bytes (1-byte blocks, or 1024-byte ones when df has no -B). */
function parseDf(text: string, paths: string[]): DiskUsage[] {
  const lines = text.split("\n").filter((l) => l.trim());
  const header = lines.shift() ?? "";
  const blockSize = /^\S+\s+1-blocks/.test(header) ? 1 : 1024;
  const rows = lines.map((line) => line.trim().split(/\s+/)).filter((f) => f.length >= 6);
  return rows.slice(0, paths.length).map((fields, i) => ({
    path: paths[i],
    mount: fields.slice(5).join(" "),
    usedBytes: Number(fields[2]) * blockSize,
    sizeBytes: Number(fields[1]) * blockSize,
  }));
}
