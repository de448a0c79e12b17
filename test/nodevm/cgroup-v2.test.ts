/**
 * cvm on a cgroup v2 node with AppArmor enforced. This machine is cgroup v1
 * (hybrid); production nodes are mostly v2 with AppArmor (Ubuntu). So a node
 * VM (Debian's cloud kernel, cgroup v2, AppArmor; images/nodevm) boots under
 * emulation, once for this file, and in it, with cvm's own code unchanged:
 * - cvm doctor's local checks see v2, really try delegation on the unified
 *   hierarchy, and compile cvm's AppArmor profile for an enforcing kernel;
 * - cvm's supervisor builds one CVM from the systemd+docker test image:
 *   systemd is PID 1 and `running` in it, the inner dockerd uses overlay2 and
 *   cgroup v2, a nested `docker run` works, and so does a nested `docker run
 *   --privileged` under cvm's AppArmor profile, and removing the CVM leaves
 *   no cgroup behind.
 * `npm test` runs it every time: a few minutes, most of them emulation.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { CheckResult } from "../../src/api/contract.js";
import { diskDevice, type ExecResult, type NodeVm, nodeVmUnavailable, startNodeVm } from "../harness/nodevm.js";
import { buildPayload, cvmImageFile, engineSeed, type Payload } from "./payload.js";

const log = (line: string) => console.log(`  ${line}`);
const image = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;

const skip =
  (await nodeVmUnavailable()) ??
  (image
    ? undefined
    : "CVM_TEST_IMAGE_SYSTEMD_DOCKER is not set: run through `npm test`, which builds the test images");

/** Where the payload is unpacked in the VM. */
const payloadDir = "/opt/cvm";

/** The JSON after `marker ` on the line that starts with it, or a failure showing the output's tail. */
function resultOf({ stdout, stderr, code }: ExecResult, marker: string): Record<string, unknown> {
  const line = stdout.split("\n").find((l) => l.startsWith(`${marker} `));
  const tail = (text: string) => text.split("\n").slice(-30).join("\n");
  assert.ok(line, `the in-VM program exited ${code} with no ${marker} line:\n${tail(stdout)}\n${tail(stderr)}`);
  return JSON.parse(line.slice(marker.length + 1));
}

let vm: NodeVm | undefined;
let payload: Payload | undefined;
const started = Date.now();

before(async () => {
  if (skip || !image) return;
  const cvmImage = await cvmImageFile(image);
  const seedStarted = Date.now();
  const seed = await engineSeed(cvmImage);
  log(`nodevm: engine data with ${cvmImage.reference} ready in ${((Date.now() - seedStarted) / 1000).toFixed(1)} s`);
  payload = await buildPayload(cvmImage);
  vm = await startNodeVm({
    disks: { "cvm-payload": payload.tar },
    writableDisks: { "cvm-engine-data": seed },
    log,
  });
  await vm.check(`mkdir -p ${payloadDir} && tar -xf ${diskDevice("cvm-payload")} -C ${payloadDir}`);
});

after(async () => {
  await vm?.close();
  await payload?.dispose();
  if (!skip) log(`nodevm: whole file ${((Date.now() - started) / 1000).toFixed(1)} s, boot included`);
});

const sh = (command: string, timeoutMs = 60_000) =>
  (vm as NodeVm).check(command, { timeoutMs }).then((out) => out.trim());

test("the node: cgroup v2 with every controller, AppArmor enforced, systemd running", { skip }, async () => {
  const node = vm as NodeVm;
  assert.equal(await sh("stat -fc %T /sys/fs/cgroup"), "cgroup2fs");
  assert.match(await sh("cat /sys/fs/cgroup/cgroup.controllers"), /\bcpu\b.*\bmemory\b.*\bpids\b/);
  assert.equal(await sh("cat /sys/module/apparmor/parameters/enabled"), "Y");
  const waited = Date.now();
  const state = (await node.exec("systemctl is-system-running --wait", { timeoutMs: 300_000 })).stdout.trim();
  log(
    `nodevm: agent after ${(node.bootMs / 1000).toFixed(1)} s, systemd ${state} after ${((node.bootMs + Date.now() - waited) / 1000).toFixed(1)} s`,
  );
  assert.match(state, /^(running|degraded)$/, await sh("systemctl --failed --no-legend || true"));
});

test("cvm doctor on the node: v2 seen, delegation tried, cvm's AppArmor profile compiles", { skip }, async () => {
  const run = await (vm as NodeVm).exec(`node ${payloadDir}/doctor-in-vm.mjs`, { timeoutMs: 180_000 });
  const results = resultOf(run, "CVM-DOCTOR-RESULT") as { userns: CheckResult[]; sysbox: CheckResult[] };
  for (const c of results.userns) log(`doctor in the VM: ${c.status} ${c.id}: ${c.evidence.split("\n")[0]}`);
  const find = (list: CheckResult[], id: string) => {
    const found = list.find((c) => c.id === id);
    assert.ok(found, `no ${id} check`);
    return found;
  };
  const checks = results.userns;
  const cgroups = find(checks, "cgroup-version");
  assert.equal(cgroups.status, "pass");
  assert.match(cgroups.evidence, /^cgroup v2; unified controllers: ".*\bmemory\b.*"/);
  const delegation = find(checks, "cgroup-delegation");
  assert.equal(delegation.status, "pass", delegation.evidence);
  assert.match(delegation.evidence, /^\/sys\/fs\/cgroup: created, chowned to \d+:\d+, removed$/);
  assert.match(find(checks, "security-module").evidence, /\/sys\/module\/apparmor\/parameters\/enabled: Y/);
  const profile = find(checks, "apparmor-profile");
  assert.equal(profile.status, "pass", profile.evidence);
  assert.match(profile.evidence, /compiles it, and the supervisor loads it|\(enforce\)/);
  assert.equal(find(checks, "kernel").status, "pass");
  assert.equal(find(checks, "overlay-in-userns").status, "pass", find(checks, "overlay-in-userns").evidence);
  // Debian 12's 6.1 kernel has one binfmt_misc for the node: the doctor says CVMs cannot register their own.
  const binfmt = find(checks, "binfmt-misc");
  assert.equal(binfmt.status, "warn", binfmt.evidence);
  assert.match(binfmt.evidence, /a binfmt_misc per user namespace needs 6\.7 or newer/);
  // Debian: fine for the built-in runtime, a warning for sysbox.
  assert.equal(find(checks, "os").status, "pass");
  assert.equal(find(results.sysbox, "os").status, "warn");
});

test("a CVM on the node, built by cvm's supervisor", { skip, timeout: 20 * 60_000 }, async (t) => {
  const node = vm as NodeVm;
  const id = `nv${Date.now().toString(36)}`;
  const engine = `docker -H unix:///var/lib/cvm-nodevm/engine/docker.sock`;
  /** What the VM shows of the CVM when something failed: its log, its cgroup, AppArmor's denials. */
  const evidence = async () =>
    (
      await node.exec(
        [
          `${engine} ps -a`,
          `${engine} logs --tail 40 cvm-env-${id} 2>&1`,
          "find /sys/fs/cgroup/cvm -maxdepth 3 -type d | head -40",
          "for d in /sys/fs/cgroup/cvm/*/; do ls -ln $d | head -12; echo procs: $(cat $d/cgroup.procs); done",
          "journalctl -k --no-pager | grep -i -E 'apparmor=.DENIED|audit' | tail -20",
          "ps -eo pid,user,etime,args | grep -v '\\[' | tail -25",
        ].join("; echo ---; "),
        { timeoutMs: 60_000 },
      )
    ).stdout;

  let built: Record<string, unknown> = {};
  await t.test("the supervisor builds it", async () => {
    const run = await node
      .exec(`node ${payloadDir}/cvm-in-vm.mjs build --id ${id} --engine-data ${diskDevice("cvm-engine-data")}`, {
        timeoutMs: 8 * 60_000,
        onOutput: (text) => {
          for (const line of text.split("\n")) if (line.startsWith("build log | ")) log(line);
        },
      })
      .catch(async (error: Error) => {
        throw new Error(`${error.message}\nevidence from the VM:\n${await evidence()}`);
      });
    built = resultOf(run, "CVM-NODEVM-RESULT");
    if (built.ok !== true) built.evidence = await evidence();
    assert.equal(built.ok, true, `${JSON.stringify(built, null, 2)}\n${run.stderr.split("\n").slice(-30).join("\n")}`);
    const observation = built.observation as { systemd: string; docker: string };
    assert.equal(observation.systemd, "running");
    assert.equal(observation.docker, "answering");
    log(`nodevm: ${JSON.stringify(built.seconds)} (seconds)`);
  });

  const needsBuild = () => (built.ok === true ? undefined : "the CVM was not built");

  await t.test(
    "inside: systemd is PID 1 and running, in a user namespace, on cgroup v2, dockerd on overlay2",
    async (st) => {
      const unbuilt = needsBuild();
      if (unbuilt) return st.skip(unbuilt);
      // One exec for all of them: each `docker exec` costs seconds under emulation.
      const probes: Record<string, string> = {
        pid1: "cat /proc/1/comm",
        systemd: "systemctl is-system-running",
        uidMap: "cat /proc/self/uid_map",
        cgroupfs: "stat -fc %T /sys/fs/cgroup",
        dockerd: 'docker info --format "{{.Driver}} {{.CgroupVersion}}"',
      };
      const script = Object.entries(probes)
        .map(([name, command]) => `echo "${name}=$(${command} 2>&1)"`)
        .join("; ");
      const out = await sh(`${engine} exec ${built.container} sh -c '${script}'`, 120_000);
      const seen = Object.fromEntries(
        out.split("\n").map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
      );
      assert.equal(seen.pid1, "systemd");
      assert.equal(seen.systemd, "running");
      assert.equal(seen.uidMap.split(/\s+/).filter(Boolean).join(" "), "0 100000 65536");
      assert.equal(seen.cgroupfs, "cgroup2fs");
      assert.equal(seen.dockerd, "overlay2 2");
    },
  );

  await t.test("inside: a nested docker run works", async (st) => {
    const unbuilt = needsBuild();
    if (unbuilt) return st.skip(unbuilt);
    // cvm/hello is loaded right after boot, off the boot's path: a moment after ready at most.
    await sh(
      `${engine} exec ${built.container} sh -c 'for i in $(seq 1 300); do docker image inspect cvm/hello >/dev/null 2>&1 && break; sleep 0.1; done'`,
      120_000,
    );
    const nested = await node.exec(`${engine} exec ${built.container} docker run --rm cvm/hello echo ok`, {
      timeoutMs: 180_000,
    });
    // Seen on this kernel: the inner runc writes the nested container's (namespaced) net.ipv4
    // sysctls, which an AppArmor profile denying writes under /proc/sys/net refuses.
    const profile = (
      await node.exec(`cat /proc/$(${engine} inspect -f '{{.State.Pid}}' ${built.container})/attr/current`)
    ).stdout;
    assert.equal(nested.stdout.trim(), "ok", `${nested.stderr}\nthe CVM's AppArmor profile: ${profile}`);
  });

  await t.test("inside, under AppArmor and cgroup v2: docker run --privileged mounts its own sysfs", async (st) => {
    const unbuilt = needsBuild();
    if (unbuilt) return st.skip(unbuilt);
    const nested = await node.exec(
      `${engine} exec ${built.container} docker run --rm --privileged cvm/hello sh -c 'grep -c " /sys rw.* - sysfs sysfs rw" /proc/self/mountinfo'`,
      { timeoutMs: 180_000 },
    );
    assert.equal(nested.stdout.trim(), "1", `${nested.stdout}${nested.stderr}`);
  });

  await t.test("removing it leaves no cgroup behind", async (st) => {
    const unbuilt = needsBuild();
    if (unbuilt) return st.skip(unbuilt);
    const run = await node.exec(`node ${payloadDir}/cvm-in-vm.mjs remove --id ${built.id}`, { timeoutMs: 180_000 });
    const removed = resultOf(run, "CVM-NODEVM-RESULT");
    assert.equal(removed.ok, true, JSON.stringify(removed, null, 2));
    assert.deepEqual(removed.cgroupsLeft, []);
  });
});
