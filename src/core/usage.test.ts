import assert from "node:assert/strict";
import { test } from "node:test";
import { parseUsage } from "./usage.js";

test("cgroup v1 with a quota: cores busy over the sample, memory less page cache, disks in bytes", () => {
  const text = `memory 1300000000
memory_limit 4294967296
inactive 300000000
cpu_quota 200000 100000
cpu_a 1000000000
cpu_b 1250000000
paths / /home /var/lib/docker
df
Filesystem         1-blocks        Used   Available Capacity Mounted on
overlay        270553174016 53589676032 44203618304      55% /
/dev/loop3      10735321088   123456789 10000000000       2% /home
/dev/loop4      10735321088    98765432 10000000000       1% /var/lib/docker
`;
  assert.deepEqual(parseUsage(text), {
    cpu: { cores: 1, limitCores: 2 },
    memory: { usedBytes: 1_000_000_000, limitBytes: 4294967296 },
    disks: [
      { path: "/", mount: "/", usedBytes: 53589676032, sizeBytes: 270553174016 },
      { path: "/home", mount: "/home", usedBytes: 123456789, sizeBytes: 10735321088 },
      { path: "/var/lib/docker", mount: "/var/lib/docker", usedBytes: 98765432, sizeBytes: 10735321088 },
    ],
  });
});

test("cgroup v2 without limits; df without -B counts kibibytes; only the paths that exist", () => {
  const text = `memory 52428800
memory_limit max
inactive 0
cpu_quota max 100000
cpu_a 5000000
cpu_b 5000000
paths /
df
Filesystem     1024-blocks    Used Available Capacity Mounted on
overlay           1000000  250000    750000      25% /
`;
  assert.deepEqual(parseUsage(text), {
    cpu: { cores: 0 },
    memory: { usedBytes: 52428800 },
    disks: [{ path: "/", mount: "/", usedBytes: 256_000_000, sizeBytes: 1_024_000_000 }],
  });
});

test("the kernel's 'no limit' on v1 reads as no limit", () => {
  const usage = parseUsage("memory 10\nmemory_limit 9223372036854771712\ncpu_quota -1 100000\ndf\n");
  assert.deepEqual(usage, { cpu: { cores: 0 }, memory: { usedBytes: 10 }, disks: [] });
});
