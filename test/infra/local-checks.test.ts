/**
 * The local checks on this machine's real kernel, files and engine: Debian 12,
 * kernel 6.18, cgroup v1 hybrid, user namespaces on, Docker 20.10 without
 * sysbox. Conditions this machine cannot show are judged in
 * src/infra/local-checks.test.ts.
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { test } from "node:test";
import type { CheckResult } from "../../src/api/contract.js";
import { compileAppArmorProfile } from "../../src/infra/host-evidence.js";
import { runLocalChecks } from "../../src/infra/local-checks.js";

const dockerHost = `unix://${process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock"}`;
const byId = (results: CheckResult[]) => new Map(results.map((r) => [r.id, r]));
const osId = /^ID=(.*)$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1];

test("the built-in runtime on this machine: kernel, OS, namespaces, cgroups, overlay, engine", async () => {
  const checks = byId(await runLocalChecks({ choice: "userns", dockerHost }));
  const kernel = checks.get("kernel")!;
  assert.equal(kernel.status, "pass");
  assert.ok(kernel.evidence.includes(release()), kernel.evidence);

  assert.equal(checks.get("os")?.status, "pass", "the built-in runtime runs on any Linux");
  assert.match(checks.get("os")!.evidence, new RegExp(`ID=${osId}`));

  const userns = checks.get("user-namespaces")!;
  const limit = readFileSync("/proc/sys/user/max_user_namespaces", "utf8").trim();
  assert.equal(userns.status, "pass");
  assert.match(userns.evidence, new RegExp(`max_user_namespaces = ${limit}`));

  const cgroups = checks.get("cgroup-version")!;
  const mounts = readFileSync("/proc/self/mounts", "utf8");
  const layout = / cgroup2 /.test(mounts) && / cgroup /.test(mounts) ? "hybrid" : / cgroup /.test(mounts) ? "v1" : "v2";
  assert.match(cgroups.evidence, new RegExp(`^cgroup ${layout}`));
  assert.equal(cgroups.status, "pass");

  // Delegation is really tried: every hierarchy shows a directory created, chowned and removed.
  const delegation = checks.get("cgroup-delegation")!;
  assert.equal(delegation.status, "pass", delegation.evidence);
  assert.match(delegation.evidence, /\/sys\/fs\/cgroup\/\S*: created, chowned to \d+:\d+, removed/);
  assert.ok(!readFileSync("/proc/self/mounts", "utf8").includes("cvm-doctor-"));

  const overlay = checks.get("overlay-in-userns")!;
  assert.equal(overlay.status, "pass", overlay.evidence);
  assert.match(overlay.evidence, /^unshare --user --map-root-user --mount mount -t overlay .*: mounted$/);

  const engine = checks.get("engine")!;
  assert.equal(engine.status, "pass", engine.evidence);
  assert.match(engine.evidence, /Docker Engine \d+\.\d+/);
  assert.equal(checks.get("isolation-runtime")?.status, "pass");
  const subuid = readFileSync("/etc/subuid", "utf8");
  const remap = /^dockremap:\d+:\d+$/m.exec(subuid)?.[0];
  assert.equal(checks.get("subordinate-ids")?.status, remap ? "pass" : "warn");
  if (remap) assert.ok(checks.get("subordinate-ids")!.evidence.includes(remap));
  assert.match(checks.get("disk")!.evidence, /^statfs \/\S+: \d+\.\d GiB free of/);
  const binfmt = checks.get("binfmt-misc")!;
  const [major, minor] = release().split(".").map(Number);
  assert.equal(binfmt.status, major > 6 || (major === 6 && minor >= 7) ? "pass" : "warn", binfmt.evidence);
  assert.ok(binfmt.evidence.includes(release()), binfmt.evidence);
});

test("sysbox on this machine: the OS warns (not Ubuntu) and the missing sysbox-runc fails", async () => {
  const checks = byId(await runLocalChecks({ choice: "sysbox", dockerHost }));
  assert.equal(checks.get("kernel")?.status, "pass");
  const os = checks.get("os")!;
  if (osId === "ubuntu") {
    assert.equal(os.status, "pass");
  } else {
    assert.equal(os.status, "warn");
    assert.match(os.evidence, /sysbox is supported on Ubuntu nodes/);
    assert.match(os.remedy ?? "", /Ubuntu/);
  }
  const runtime = checks.get("isolation-runtime")!;
  assert.equal(runtime.status, "fail");
  assert.match(runtime.evidence, /sysbox-runc is not registered/);
  // The built-in runtime's own requirements are not sysbox's.
  assert.equal(checks.has("overlay-in-userns"), false);
  assert.equal(checks.has("cgroup-delegation"), false);
});

test("auto resolves to the built-in runtime where no sysbox-runc is registered", async () => {
  const checks = byId(await runLocalChecks({ choice: "auto", dockerHost }));
  assert.match(checks.get("isolation-runtime")!.evidence, /settings: auto; .*no sysbox-runc registered/);
  assert.equal(checks.get("os")?.status, "pass");
});

test("an engine that does not answer fails with the connection error verbatim", async () => {
  const checks = byId(await runLocalChecks({ choice: "userns", dockerHost: "unix:///tmp/cvm-doctor-no-such.sock" }));
  const engine = checks.get("engine")!;
  assert.equal(engine.status, "fail");
  assert.match(engine.evidence, /^unix:\/\/\/tmp\/cvm-doctor-no-such\.sock: .*ENOENT/);
  assert.match(engine.remedy ?? "", /--docker-host/);
});

test("free disk is measured where both engines keep images, a data directory not yet made where it will be", async () => {
  const dataDir = `/tmp/cvm-doctor-not-yet-${process.pid}/data`;
  const checks = byId(await runLocalChecks({ choice: "userns", dockerHost, dataDir }));
  const disk = checks.get("disk")!;
  assert.match(disk.evidence, /^statfs \/var\/lib\/docker: \d+\.\d GiB free/m);
  assert.match(disk.evidence, /^statfs \/tmp: \d+\.\d GiB free/m);
});

const parser = ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"].find((p) => existsSync(p));

test("cvm's AppArmor profile really compiles with this machine's apparmor_parser; a broken one is quoted", {
  skip: parser ? false : "apparmor_parser is not installed here (apt-get install apparmor)",
}, async () => {
  const compiled = await compileAppArmorProfile(parser!);
  assert.deepEqual([compiled.ok, compiled.output], [true, ""]);
  const broken = await compileAppArmorProfile(parser!, "profile cvm-doctor-broken {\n  not a rule,\n}\n");
  assert.equal(broken.ok, false);
  assert.match(broken.output, /AppArmor parser error/);
});
