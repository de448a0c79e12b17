/**
 * The CVM runtime on a cgroup v2 node. This machine is cgroup v1 (hybrid);
 * production nodes are mostly v2 with AppArmor enforced (Ubuntu). So a node
 * VM (Debian's cloud kernel, cgroup v2, AppArmor; images/nodevm) boots under
 * emulation, and inside it cvm's own supervisor code builds one CVM from the
 * systemd+docker test image. Asserted from inside the VM: the node is cgroup
 * v2, systemd is PID 1 and `running` in the CVM, the inner dockerd uses
 * overlay2 and cgroup v2, a nested `docker run` works, and so does a nested
 * `docker run --privileged` under cvm's AppArmor profile, and removing the
 * CVM leaves no cgroup behind.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { diskDevice, type ExecResult, type NodeVm, nodeVmUnavailable, startNodeVm } from "../harness/nodevm.js";
import { buildPayload, cvmImageFile, engineSeed, type Payload } from "./payload.js";

const log = (line: string) => console.log(`  ${line}`);
const image = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;

const skip =
  (await nodeVmUnavailable()) ??
  (process.env.CVM_TEST_NODEVM === "1"
    ? undefined
    : "the node VM test runs the CVM runtime under software emulation (5 to 10 minutes on a busy 2-core machine): set CVM_TEST_NODEVM=1") ??
  (image
    ? undefined
    : "CVM_TEST_IMAGE_SYSTEMD_DOCKER is not set: run through `npm test`, which builds the test images");

const resultMarker = "CVM-NODEVM-RESULT";

function resultOf({ stdout, stderr, code }: ExecResult): Record<string, unknown> {
  const line = stdout.split("\n").find((l) => l.startsWith(`${resultMarker} `));
  const tail = (text: string) => text.split("\n").slice(-30).join("\n");
  assert.ok(line, `the in-VM script exited ${code} with no result line:\n${tail(stdout)}\n${tail(stderr)}`);
  return JSON.parse(line.slice(resultMarker.length + 1));
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
});

after(async () => {
  await vm?.close();
  await payload?.dispose();
  if (!skip) log(`nodevm: whole check ${((Date.now() - started) / 1000).toFixed(1)} s, boot included`);
});

test("a CVM runs on a cgroup v2 node (node VM under emulation)", { skip, timeout: 20 * 60_000 }, async (t) => {
  const node = vm as NodeVm;
  const sh = (command: string, timeoutMs = 60_000) => node.check(command, { timeoutMs }).then((out) => out.trim());

  await t.test("the node is cgroup v2 with AppArmor enforced", async () => {
    assert.equal(await sh("stat -fc %T /sys/fs/cgroup"), "cgroup2fs");
    assert.match(await sh("cat /sys/fs/cgroup/cgroup.controllers"), /\bcpu\b.*\bmemory\b.*\bpids\b/);
    assert.equal(await sh("cat /sys/module/apparmor/parameters/enabled"), "Y");
    const bootStarted = Date.now();
    const state = (await node.exec("systemctl is-system-running --wait", { timeoutMs: 300_000 })).stdout.trim();
    log(
      `nodevm: agent after ${(node.bootMs / 1000).toFixed(1)} s, systemd ${state} after ${((node.bootMs + Date.now() - bootStarted) / 1000).toFixed(1)} s`,
    );
    assert.match(state, /^(running|degraded)$/, await sh("systemctl --failed --no-legend || true"));
  });

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
  await t.test("cvm's supervisor builds the CVM there", async () => {
    const dir = "/opt/cvm";
    const run = await node
      .exec(
        `mkdir -p ${dir} && tar -xf ${diskDevice("cvm-payload")} -C ${dir} && node ${dir}/cvm-in-vm.mjs build --id ${id} --engine-data ${diskDevice("cvm-engine-data")}`,
        {
          timeoutMs: 8 * 60_000,
          onOutput: (text) => {
            for (const line of text.split("\n")) if (line.startsWith("build log | ")) log(line);
          },
        },
      )
      .catch(async (error: Error) => {
        throw new Error(`${error.message}\nevidence from the VM:\n${await evidence()}`);
      });
    built = resultOf(run);
    if (built.ok !== true) built.evidence = await evidence();
    assert.equal(built.ok, true, `${JSON.stringify(built, null, 2)}\n${run.stderr.split("\n").slice(-30).join("\n")}`);
    const observation = built.observation as { systemd: string; docker: string };
    assert.equal(observation.systemd, "running");
    assert.equal(observation.docker, "answering");
    log(`nodevm: ${JSON.stringify(built.seconds)} (seconds)`);
  });

  const inCvm = (command: string) =>
    sh(`docker -H unix://${built.socket} exec ${built.container} sh -c '${command}'`, 120_000);

  const needsBuild = () => (built.ok === true ? undefined : "the CVM was not built");

  await t.test("inside the CVM: systemd is PID 1 and running, in a user namespace, on cgroup v2", async (st) => {
    const unbuilt = needsBuild();
    if (unbuilt) return st.skip(unbuilt);
    assert.equal(await inCvm("cat /proc/1/comm"), "systemd");
    assert.equal(await inCvm("systemctl is-system-running"), "running");
    assert.equal((await inCvm("cat /proc/self/uid_map")).split(/\s+/).join(" "), "0 100000 65536");
    assert.equal(await inCvm("stat -fc %T /sys/fs/cgroup"), "cgroup2fs");
  });

  await t.test("inside the CVM: dockerd uses overlay2 and cgroup v2, and a nested docker run works", async (st) => {
    const unbuilt = needsBuild();
    if (unbuilt) return st.skip(unbuilt);
    assert.equal(await inCvm('docker info --format "{{.Driver}} {{.CgroupVersion}}"'), "overlay2 2");
    const nested = await node.exec(`${engine} exec ${built.container} docker run --rm cvm/hello echo ok`, {
      timeoutMs: 120_000,
    });
    // Seen on this kernel: the inner runc writes the nested container's (namespaced) net.ipv4
    // sysctls, which an AppArmor profile denying writes under /proc/sys/net refuses.
    const profile = (
      await node.exec(`cat /proc/$(${engine} inspect -f '{{.State.Pid}}' ${built.container})/attr/current`)
    ).stdout;
    assert.equal(nested.stdout.trim(), "ok", `${nested.stderr}\nthe CVM's AppArmor profile: ${profile}`);
  });

  await t.test(
    "inside the CVM under AppArmor and cgroup v2: docker run --privileged mounts its own sysfs",
    async (st) => {
      const unbuilt = needsBuild();
      if (unbuilt) return st.skip(unbuilt);
      const nested = await node.exec(
        `${engine} exec ${built.container} docker run --rm --privileged cvm/hello sh -c 'grep -c " /sys rw.* - sysfs sysfs rw" /proc/self/mountinfo'`,
        { timeoutMs: 180_000 },
      );
      assert.equal(nested.stdout.trim(), "1", `${nested.stdout}${nested.stderr}`);
    },
  );

  await t.test("removing the CVM leaves no cgroup behind", async (st) => {
    const unbuilt = needsBuild();
    if (unbuilt) return st.skip(unbuilt);
    const run = await node.exec(`node /opt/cvm/cvm-in-vm.mjs remove --id ${built.id}`, { timeoutMs: 120_000 });
    const removed = resultOf(run);
    assert.equal(removed.ok, true, JSON.stringify(removed, null, 2));
    assert.deepEqual(removed.cgroupsLeft, []);
  });
});
