/**
 * The local checks' judges, fed evidence this machine cannot produce itself
 * (old kernels, enforcing AppArmor, a missing sysbox). What the real machine
 * says is tested in test/infra/local-checks.test.ts.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import type { CheckStatus } from "../api/contract.js";
import { type CvmRuntime, resolveRuntime } from "../core/isolation-runtime.js";
import type { Verdict } from "./check.js";
import { type EngineEvidence, parseCgroupMounts, parseOsRelease, parseSubordinateIds } from "./host-evidence.js";
import {
  cgroupLayout,
  cvmAppArmorProfile,
  diskFailBelow,
  diskWarnBelow,
  judgeAppArmorProfile,
  judgeBinfmtMisc,
  judgeCgroupDelegation,
  judgeCgroupVersion,
  judgeDisk,
  judgeDisks,
  judgeEngine,
  judgeIsolationRuntime,
  judgeKernel,
  judgeOs,
  judgeOverlay,
  judgeSecurityModule,
  judgeSubordinateIds,
  judgeUserNamespaces,
} from "./local-checks.js";

const ubuntu = (versionId: string) =>
  parseOsRelease(`NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="${versionId}"\nPRETTY_NAME="Ubuntu ${versionId} LTS"`);
const debian = parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"');
const fedora = parseOsRelease('ID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40"');

function expect(verdict: Verdict, status: CheckStatus, evidence?: RegExp, remedy?: RegExp) {
  assert.equal(verdict.status, status, `${verdict.evidence}`);
  if (evidence) assert.match(verdict.evidence, evidence);
  if (status === "pass" || status === "not-applicable") assert.equal(verdict.remedy, undefined);
  else assert.ok(verdict.remedy, "a warn or fail says what to do");
  if (remedy) assert.match(verdict.remedy ?? "", remedy);
}

const kernelCases: [string, CvmRuntime, ReturnType<typeof parseOsRelease> | undefined, CheckStatus][] = [
  ["4.19.112+", "userns", debian, "fail"],
  ["5.4.0-1049-gke", "userns", ubuntu("20.04"), "pass"],
  ["5.4.0-1049-gke", "sysbox", ubuntu("20.04"), "pass"],
  ["5.4.0-1049-gke", "sysbox", ubuntu("22.04"), "fail"],
  ["5.15.0-1057-azure", "sysbox", ubuntu("22.04"), "pass"],
  ["6.5.0-1020-aws", "sysbox", ubuntu("24.04"), "fail"],
  ["6.8.0-1015-aws", "sysbox", ubuntu("24.04"), "pass"],
  ["5.10.210-201.852.amzn2.x86_64", "sysbox", fedora, "fail"],
  ["5.10.210-201.852.amzn2.x86_64", "userns", fedora, "pass"],
  ["6.1.0-13-cloud-amd64", "sysbox", debian, "pass"],
  ["6.18.44-fc-v657", "userns", debian, "pass"],
  ["not-a-kernel", "userns", debian, "fail"],
];

for (const [release, runtime, os, status] of kernelCases) {
  test(`kernel ${release} under ${runtime} on ${os?.prettyName}: ${status}`, () => {
    const verdict = judgeKernel(release, runtime, os);
    expect(verdict, status, new RegExp(release.replace(/[.+]/g, "\\$&")));
  });
}

test("foreign architectures: a binfmt_misc per CVM from 6.7; before, a warning says why and what to do", () => {
  expect(judgeBinfmtMisc("6.18.44-fc-v857"), "pass", /each CVM has a binfmt_misc of its own \(kernel 6\.18\.44/);
  expect(judgeBinfmtMisc("6.7.0"), "pass");
  expect(
    judgeBinfmtMisc("6.1.0-13-cloud-amd64"),
    "warn",
    /kernel 6\.1\.0-13-cloud-amd64 has one binfmt_misc for the whole node/,
    /Run kernel 6\.7 or newer/,
  );
  expect(judgeBinfmtMisc("not-a-kernel"), "warn");
});

test("an old kernel fails with the minimum it needs and how to get there", () => {
  expect(
    judgeKernel("4.19.112+", "userns", debian),
    "fail",
    /needs 5\.4 or newer/,
    /Upgrade the node's kernel to 5\.4/,
  );
});

test("the OS: Ubuntu for sysbox, anything for the built-in runtime", () => {
  expect(judgeOs(debian, "sysbox"), "warn", /ID=debian/, /Ubuntu/);
  expect(judgeOs(debian, "userns"), "pass", /ID=debian/);
  expect(judgeOs(ubuntu("22.04"), "sysbox"), "pass", /VERSION_ID=22\.04/);
  expect(judgeOs(ubuntu("18.04"), "sysbox"), "warn", /20\.04, 22\.04 and 24\.04/);
  expect(judgeOs(fedora, "sysbox"), "warn", /ID=fedora/);
  expect(judgeOs(undefined, "sysbox"), "warn", /os-release/);
});

test("user namespaces: off, low, restricted, enabled", () => {
  expect(judgeUserNamespaces({}), "fail", /max_user_namespaces = \(absent\)/, /CONFIG_USER_NS/);
  expect(judgeUserNamespaces({ maxUserNamespaces: "0" }), "fail", /= 0/, /sysctl -w user\.max_user_namespaces/);
  expect(judgeUserNamespaces({ maxUserNamespaces: "15" }), "warn", /= 15/);
  expect(
    judgeUserNamespaces({ maxUserNamespaces: "63704", unprivilegedClone: "0" }),
    "warn",
    /unprivileged_userns_clone = 0/,
    /unprivileged_userns_clone=1/,
  );
  expect(judgeUserNamespaces({ maxUserNamespaces: "63704", unprivilegedClone: "1" }), "pass", /= 63704/);
});

test("subordinate ids for dockremap: present, missing, too small, shared", () => {
  const ids = (text: string) => parseSubordinateIds(text);
  expect(
    judgeSubordinateIds({ subuid: ids("dockremap:100000:65536"), subgid: ids("dockremap:100000:65536") }),
    "pass",
    /dockremap:100000:65536/,
  );
  expect(
    judgeSubordinateIds({ subuid: ids("alice:100000:65536"), subgid: ids("") }),
    "warn",
    /no range for dockremap/,
    /--userns-remap=default/,
  );
  expect(
    judgeSubordinateIds({ subuid: ids("dockremap:100000:1000"), subgid: ids("dockremap:100000:65536") }),
    "fail",
    /1000 ids, 65536 needed/,
  );
  expect(
    judgeSubordinateIds({
      subuid: ids("dockremap:100000:65536\nalice:120000:65536"),
      subgid: ids("dockremap:100000:65536"),
    }),
    "warn",
    /overlaps alice:120000:65536/,
  );
  expect(judgeSubordinateIds({}), "warn", /\/etc\/subuid does not exist/);
});

const hybridMounts = parseCgroupMounts(
  [
    "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0",
    "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0",
    "cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0",
    "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0",
  ].join("\n"),
);

test("cgroup layouts: v2, hybrid, v1 with and without name=systemd, none", () => {
  const v2 = parseCgroupMounts("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0");
  const v1 = parseCgroupMounts("cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0");
  assert.equal(cgroupLayout({ mounts: hybridMounts }), "hybrid");
  expect(
    judgeCgroupVersion({ mounts: v2, unifiedControllers: "cpu memory pids" }),
    "pass",
    /cgroup v2; .*cpu memory pids/,
  );
  expect(judgeCgroupVersion({ mounts: hybridMounts }), "pass", /cgroup hybrid/);
  expect(judgeCgroupVersion({ mounts: v1 }), "warn", /cgroup v1/, /name=systemd/);
  expect(judgeCgroupVersion({ mounts: [] }), "fail", /no cgroup/);
});

test("cgroup delegation: every hierarchy handed over, or the error verbatim", () => {
  expect(
    judgeCgroupDelegation([
      { hierarchy: "/sys/fs/cgroup", ok: true, outcome: "created, chowned to 100000:100000, removed" },
    ]),
    "pass",
  );
  const readOnly = "mkdir failed: EROFS: read-only file system, mkdir '/sys/fs/cgroup/cvm-doctor-1'";
  expect(
    judgeCgroupDelegation([{ hierarchy: "/sys/fs/cgroup", ok: false, outcome: readOnly }]),
    "fail",
    /EROFS: read-only file system/,
    /writable/,
  );
  expect(judgeCgroupDelegation([]), "fail");
});

test("overlay in a user namespace: the kernel's refusal is quoted", () => {
  const command =
    "unshare --user --map-root-user --mount mount -t overlay overlay -o lowerdir=/a,upperdir=/b,workdir=/c /d";
  expect(judgeOverlay({ command, ok: true, output: "" }), "pass", /mounted/);
  expect(
    judgeOverlay({ command, ok: false, output: "mount: /d: permission denied." }),
    "fail",
    /mount: \/d: permission denied\./,
    /5\.11/,
  );
});

const engine: EngineEvidence = {
  host: "unix:///var/run/docker.sock",
  version: "24.0.7",
  apiVersion: "1.43",
  runtimes: ["io.containerd.runc.v2", "runc"],
  defaultRuntime: "runc",
  dockerRootDir: "/var/lib/docker",
  cgroupVersion: "2",
  cgroupDriver: "systemd",
};
const withSysbox: EngineEvidence = { ...engine, runtimes: ["runc", "sysbox-runc"] };

test("the engine: reachable and recent, old, unreachable", () => {
  expect(judgeEngine(engine), "pass", /Docker Engine 24\.0\.7 \(API 1\.43\)/);
  expect(judgeEngine({ ...engine, version: "19.03.15" }), "warn", /19\.03\.15/, /20\.10/);
  expect(
    judgeEngine({ host: "unix:///nowhere.sock", error: "connect ENOENT /nowhere.sock" }),
    "fail",
    /connect ENOENT \/nowhere\.sock/,
    /--docker-host/,
  );
});

test("the isolation runtime: auto picks sysbox only when sysbox-runc is registered", () => {
  assert.equal(resolveRuntime("auto", engine.runtimes), "userns");
  assert.equal(resolveRuntime("auto", withSysbox.runtimes), "sysbox");
  assert.equal(resolveRuntime("sysbox", engine.runtimes), "sysbox");
  expect(judgeIsolationRuntime(engine, { choice: "sysbox", runtime: "sysbox" }), "fail", /not registered/, /sysbox/);
  expect(
    judgeIsolationRuntime(withSysbox, { choice: "sysbox", runtime: "sysbox" }),
    "pass",
    /sysbox-runc is registered/,
  );
  expect(judgeIsolationRuntime(engine, { choice: "auto", runtime: "userns" }), "pass", /no sysbox-runc registered/);
});

const profiles = "docker-default (enforce)\nlsb_release (enforce)\n";

test("AppArmor and SELinux", () => {
  expect(judgeSecurityModule({}, "userns"), "pass", /enabled: \(absent\)/);
  expect(judgeSecurityModule({ apparmorEnabled: "Y", apparmorParser: "/sbin/apparmor_parser" }, "userns"), "pass");
  expect(judgeSecurityModule({ apparmorEnabled: "Y" }, "userns"), "fail", /apparmor_parser not found/, /apparmor/);
  expect(judgeSecurityModule({ selinuxEnforce: "1" }, "userns"), "warn", /SELinux is enforcing/, /spc_t/);
  expect(judgeSecurityModule({ selinuxEnforce: "0" }, "userns"), "pass", /enforce: 0/);
});

test("AppArmor enforcing without cvm's profile fails unless the supervisor can load it; with it, passes", () => {
  const on = { apparmorEnabled: "Y", apparmorProfiles: profiles, apparmorParser: "/sbin/apparmor_parser" };
  expect(judgeAppArmorProfile({}), "not-applicable", /AppArmor is off, so no profile is needed/);
  expect(
    judgeAppArmorProfile({ ...on, apparmorParser: undefined }),
    "fail",
    new RegExp(`${cvmAppArmorProfile} is not among the 2 loaded profiles, and apparmor_parser is not installed`),
    /inner dockerd/,
  );
  const broken = "AppArmor parser error at line 3: Could not open 'abstractions/base'";
  expect(
    judgeAppArmorProfile({ ...on, compile: { command: "apparmor_parser -QK", ok: false, output: broken } }),
    "fail",
    /does not compile here: AppArmor parser error at line 3: Could not open 'abstractions\/base'/,
  );
  expect(
    judgeAppArmorProfile({ ...on, compile: { command: "apparmor_parser -QK", ok: true, output: "" } }),
    "pass",
    /compiles it, and the supervisor loads it before the first CVM/,
  );
  expect(
    judgeAppArmorProfile({ ...on, apparmorProfiles: `${profiles}${cvmAppArmorProfile} (enforce)` }),
    "pass",
    new RegExp(`${cvmAppArmorProfile} \\(enforce\\)`),
  );
  expect(judgeAppArmorProfile({ apparmorEnabled: "Y" }), "warn", /cannot be read/, /securityfs/);
});

test("free disk: plenty, little, too little, unmeasurable", () => {
  const gib = 1024 ** 3;
  const disk = (free: number) => ({ path: "/var/lib/docker", freeBytes: free, totalBytes: 100 * gib });
  expect(judgeDisk(disk(75.5 * gib)), "pass", /75\.5 GiB free of 100\.0 GiB/);
  expect(judgeDisk(disk(diskWarnBelow - gib)), "warn", /19\.0 GiB free/, /docker image prune/);
  expect(judgeDisk(disk(diskFailBelow - gib)), "fail", /4\.0 GiB free/);
  expect(
    judgeDisk({ path: "/remote", error: "ENOENT: no such file or directory, statfs '/remote'" }),
    "warn",
    /ENOENT/,
  );
});

test("free disk in several places: the fullest decides, each is listed", () => {
  const gib = 1024 ** 3;
  const verdict = judgeDisks([
    { path: "/var/lib/docker", freeBytes: 80 * gib, totalBytes: 100 * gib },
    { path: "/var/lib/cvm", freeBytes: 3 * gib, totalBytes: 10 * gib },
  ]);
  expect(verdict, "fail", /\/var\/lib\/docker: 80\.0 GiB free[\s\S]*\/var\/lib\/cvm: 3\.0 GiB free/, /\/var\/lib\/cvm/);
});
