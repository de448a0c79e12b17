/**
 * The local checks where this machine cannot take them: a node VM (Debian's
 * cloud kernel, cgroup v2 with every controller, AppArmor enforced; see
 * images/nodevm) booted under emulation. There the cgroup check must see v2,
 * delegation is really tried on the unified hierarchy, and the AppArmor
 * profile check runs against a real enforcing kernel and apparmor_parser.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { build } from "esbuild";
import type { CheckResult } from "../../src/api/contract.js";
import { diskDevice, type NodeVm, nodeVmUnavailable, startNodeVm } from "../harness/nodevm.js";

const run = promisify(execFile);
const log = (line: string) => console.log(`  ${line}`);
const skip =
  (await nodeVmUnavailable()) ??
  (process.env.CVM_TEST_NODEVM === "1"
    ? undefined
    : "the node VM boots under software emulation (minutes on a busy machine): set CVM_TEST_NODEVM=1");

let vm: NodeVm | undefined;
let dir: string | undefined;
let results: { userns: CheckResult[]; sysbox: CheckResult[] };

before(async () => {
  if (skip) return;
  dir = await mkdtemp("/tmp/cvm-doctor-vm-");
  const tree = join(dir, "tree");
  await build({
    entryPoints: [join(import.meta.dirname, "doctor-in-vm.ts")],
    outfile: join(tree, "doctor-in-vm.mjs"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["cpu-features", "*.node"],
    banner: {
      // CommonJS dependencies (dockerode's ssh2) read require and __dirname at load time.
      js: [
        "import { createRequire as __cvmRequire } from 'node:module';",
        "import { fileURLToPath as __cvmPath } from 'node:url';",
        "const require = __cvmRequire(import.meta.url);",
        "const __filename = __cvmPath(import.meta.url);",
        "const __dirname = __cvmPath(new URL('.', import.meta.url));",
      ].join(" "),
    },
    logLevel: "error",
  });
  const tar = join(dir, "doctor.tar");
  await run("tar", ["-cf", tar, "-C", tree, "."]);
  vm = await startNodeVm({ disks: { "cvm-doctor": tar }, log });
  await vm.exec("systemctl is-system-running --wait", { timeoutMs: 180_000 });
  const out = await vm.check(
    `mkdir -p /opt/doctor && tar -xf ${diskDevice("cvm-doctor")} -C /opt/doctor && node /opt/doctor/doctor-in-vm.mjs`,
    { timeoutMs: 180_000 },
  );
  const line = out.split("\n").find((l) => l.startsWith("CVM-DOCTOR-RESULT "));
  assert.ok(line, out);
  results = JSON.parse(line.slice("CVM-DOCTOR-RESULT ".length));
  for (const c of results.userns) log(`in the VM: ${c.status} ${c.id}: ${c.evidence.split("\n")[0]}`);
});

after(async () => {
  await vm?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const find = (list: CheckResult[], id: string) => {
  const found = list.find((c) => c.id === id);
  assert.ok(found, `no ${id} check`);
  return found;
};

test("on a cgroup v2 node with AppArmor: v2 seen, delegation tried, cvm's profile compiles", {
  skip,
  timeout: 15 * 60_000,
}, () => {
  const checks = results.userns;
  const cgroups = find(checks, "cgroup-version");
  assert.equal(cgroups.status, "pass");
  assert.match(cgroups.evidence, /^cgroup v2; unified controllers: ".*\bmemory\b.*"/);
  const delegation = find(checks, "cgroup-delegation");
  assert.equal(delegation.status, "pass", delegation.evidence);
  assert.match(delegation.evidence, /^\/sys\/fs\/cgroup: created, chowned to \d+:\d+, removed$/);
  const security = find(checks, "security-module");
  assert.match(security.evidence, /\/sys\/module\/apparmor\/parameters\/enabled: Y/);
  const profile = find(checks, "apparmor-profile");
  assert.equal(profile.status, "pass", profile.evidence);
  assert.match(profile.evidence, /compiles it, and the supervisor loads it|\(enforce\)/);
  assert.equal(find(checks, "kernel").status, "pass");
  assert.equal(find(checks, "overlay-in-userns").status, "pass", find(checks, "overlay-in-userns").evidence);
  // Debian 12's 6.1 kernel has one binfmt_misc for the node: the doctor says CVMs cannot register their own.
  const binfmt = find(checks, "binfmt-misc");
  assert.equal(binfmt.status, "warn", binfmt.evidence);
  assert.match(binfmt.evidence, /a binfmt_misc per user namespace needs 6\.7 or newer/);
  // Debian again: fine for the built-in runtime, a warning for sysbox.
  assert.equal(find(checks, "os").status, "pass");
  assert.equal(find(results.sysbox, "os").status, "warn");
});
