import assert from "node:assert/strict";
import { test } from "node:test";
import { cgroupDirectories, cgroupMounts, delegatedFiles } from "./cgroup-delegation.js";

const id = "e6c90c1bf952bf5c1fa9e5ed29b574cc3057361013ea069b1815d6245d964075";

// This project's machines: cgroup v1, each controller on its own mount, a named
// systemd hierarchy and an empty unified one (hybrid).
const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

const hybridProcCgroup = `9:name=systemd:/cvm/${id}
8:pids:/cvm/${id}
7:blkio:/cvm/${id}
6:freezer:/cvm/${id}
5:devices:/cvm/${id}
4:memory:/cvm/${id}
3:cpuset:/cvm/${id}
2:cpuacct:/cvm/${id}
1:cpu:/cvm/${id}
0::/cvm/${id}
`;

test("cgroup v1 (hybrid): every controller, name=systemd and the unified directory", () => {
  const dirs = cgroupDirectories(hybridProcCgroup, cgroupMounts(hybridMountinfo));
  assert.deepEqual(
    dirs.sort(),
    ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd", "unified"]
      .map((h) => `/sys/fs/cgroup/${h}/cvm/${id}`)
      .sort(),
  );
});

test("cgroup v1 with co-mounted controllers (Ubuntu's cpu,cpuacct and net_cls,net_prio)", () => {
  const mountinfo = `30 25 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
34 25 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,net_cls,net_prio
35 25 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,memory
`;
  const proc = `4:net_cls,net_prio:/cvm/${id}
3:memory:/cvm/${id}
2:cpu,cpuacct:/cvm/${id}
1:name=systemd:/cvm/${id}
`;
  assert.deepEqual(cgroupDirectories(proc, cgroupMounts(mountinfo)).sort(), [
    `/sys/fs/cgroup/cpu,cpuacct/cvm/${id}`,
    `/sys/fs/cgroup/memory/cvm/${id}`,
    `/sys/fs/cgroup/net_cls,net_prio/cvm/${id}`,
    `/sys/fs/cgroup/systemd/cvm/${id}`,
  ]);
});

test("cgroup v2 (production): the one unified directory, cgroupfs driver", () => {
  const mountinfo =
    "25 19 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
  assert.deepEqual(cgroupDirectories(`0::/cvm/${id}\n`, cgroupMounts(mountinfo)), [`/sys/fs/cgroup/cvm/${id}`]);
});

test("cgroup v2 with the systemd driver: the container's scope", () => {
  const mountinfo =
    "25 19 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
  assert.deepEqual(cgroupDirectories(`0::/system.slice/docker-${id}.scope\n`, cgroupMounts(mountinfo)), [
    `/sys/fs/cgroup/system.slice/docker-${id}.scope`,
  ]);
});

test("a supervisor in a container sees its cgroup namespace's root mounted at /sys/fs/cgroup", () => {
  // Inside a cgroup namespace, /proc/PID/cgroup is relative to the namespace root, and so is the mount.
  const mountinfo = "600 590 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n";
  assert.deepEqual(cgroupDirectories(`0::/cvm/${id}\n`, cgroupMounts(mountinfo)), [`/sys/fs/cgroup/cvm/${id}`]);
  // A mount of a subtree (root not "/") maps paths below it and ignores paths outside it.
  const sub = "600 590 0:22 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
  assert.deepEqual(cgroupDirectories(`0::/kubepods/pod1/cvm/${id}\n`, cgroupMounts(sub)), [`/sys/fs/cgroup/cvm/${id}`]);
  assert.deepEqual(cgroupDirectories("0::/elsewhere\n", cgroupMounts(sub)), []);
});

test("delegation hands over the directory's process files, never its limit files", () => {
  for (const files of Object.values(delegatedFiles)) {
    assert.ok(files.includes("cgroup.procs"));
    for (const limit of ["memory.max", "memory.limit_in_bytes", "cpu.max", "cpu.cfs_quota_us", "pids.max"]) {
      assert.ok(!files.includes(limit), `${limit} must stay the node root's`);
    }
  }
  assert.deepEqual(delegatedFiles[2], ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"]);
});

test("mount points with escaped characters are unescaped", () => {
  const mounts = cgroupMounts("40 31 0:37 / /sys/fs/cgroup/with\\040space rw - cgroup cgroup rw,name=systemd\n");
  assert.equal(mounts[0].mountPoint, "/sys/fs/cgroup/with space");
  assert.equal(mounts[0].hierarchy, "name=systemd");
});
