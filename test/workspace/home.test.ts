/**
 * An environment as a home, on a real server with the docker provider: its
 * CPU, memory and disks against its limits, read live from its own cgroup
 * (the API and `cvm env show`), and its idle timer (the site's default, its
 * own override, `cvm env idle`).
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Environment } from "../../src/core/environment.js";
import {
  assertOwnProc,
  cvmBin,
  ok,
  ownProcScript,
  type Person,
  startWorkspaceServer,
  type WorkspaceServer,
} from "./harness.js";

const image = process.env.CVM_TEST_IMAGE_SYSTEMD;
const cvmImage = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
const skip = (!image || !cvmImage) && "run through `npm test`, which builds the test images";

let workspace: WorkspaceServer;
let alice: Person;
let box: Environment;
let vm: Environment;

before(async () => {
  if (skip) return;
  workspace = await startWorkspaceServer("home");
  alice = workspace.alice;
  [box, vm] = await Promise.all([
    (async () => {
      const created = await alice.client.createEnvironment({
        name: "box",
        image: image as string,
        cpu: 1.5,
        memoryGiB: 1,
      });
      return workspace.follow(alice, created);
    })(),
    (async () => {
      const created = await alice.client.createEnvironment({
        name: "vm",
        image: cvmImage as string,
        cvm: true,
        cpu: 2,
        memoryGiB: 4,
        diskGiB: 5,
      });
      return workspace.follow(alice, created);
    })(),
  ]);
});

after(async () => {
  await workspace?.close();
});

describe("an environment as a home", { skip }, () => {
  test("usage: CPU and memory against the limits from its cgroup, disks from its filesystems", async () => {
    const usage = await alice.client.usage("box");
    assert.equal(usage.cpu.limitCores, 1.5);
    assert.equal(usage.memory.limitBytes, 2 ** 30);
    assert.ok(usage.memory.usedBytes > 0 && usage.memory.usedBytes < 2 ** 30, String(usage.memory.usedBytes));
    assert.deepEqual(
      usage.disks.map((d) => d.path),
      ["/", "/home"],
    );

    // Busy CPU shows as busy: as much as this shared machine gives the loop, which is some.
    const idle = usage.cpu.cores;
    await ok(cvmBin, ["ssh", "box", "--", "sh", "-c", "(timeout 30 sh -c 'while :; do :; done' &) >/dev/null 2>&1"], {
      env: alice.env,
    });
    let cores = 0;
    for (let i = 0; i < 10; i++) cores = Math.max(cores, (await alice.client.usage("box")).cpu.cores);
    assert.ok(cores >= 0.05 && cores > idle, `a busy loop shows ${cores} cores, idle ${idle}`);
    assert.ok(cores <= 1.6, `no more than the quota: ${cores}`);

    const inCvm = await alice.client.usage("vm");
    assert.equal(inCvm.cpu.limitCores, 2);
    assert.equal(inCvm.memory.limitBytes, 4 * 2 ** 30);
    const docker = inCvm.disks.find((d) => d.path === "/var/lib/docker");
    assert.ok(docker, JSON.stringify(inCvm.disks));
    // A 5 GiB ext4 disk, less what the file system keeps for itself.
    const ratio = docker.sizeBytes / (5 * 2 ** 30);
    assert.ok(ratio > 0.9 && ratio <= 1, `the inner Docker's disk is ${docker.sizeBytes} bytes`);

    const stranger = await workspace.bob.client.usage(box.id).catch((e: Error) => e);
    assert.match(String(stranger), /not found/);
  });

  test("cvm env show adds usage, the idle timer and how to connect", async () => {
    const shown = await ok(cvmBin, ["env", "show", "box"], { env: alice.env });
    assert.match(shown, /^cpu: +[\d.]+ cores of 1\.5 cores$/m);
    assert.match(shown, /^memory: +\d+ MiB of 1\.0 GiB$/m);
    assert.match(shown, /^idle stop: +never$/m);
    assert.match(shown, /^connect: +ssh box\.cvm {2}\(after cvm config-ssh\), or cvm ssh box$/m);
  });

  test("idle stop: the site's default, the environment's own, and when it stops", async () => {
    await workspace.admin.client.updateInfrastructure({ idleStopMinutes: 120 });
    try {
      const site = await alice.client.idle("box");
      assert.equal(site.minutes, 120);
      assert.equal(site.source, "site");
      const stopsIn = Date.parse(site.stopsAt as string) - Date.now();
      assert.ok(stopsIn > 100 * 60_000 && stopsIn <= 120 * 60_000, site.stopsAt);

      const own = await ok(cvmBin, ["env", "idle", "box", "45"], { env: alice.env });
      assert.match(own, /^idle stop: +after 45 minutes without use$/m);
      assert.match(own, /^set by: +this environment$/m);
      assert.equal((await alice.client.idle("box")).source, "environment");
      const never = await alice.client.setIdle("box", 0);
      assert.deepEqual([never.minutes, never.stopsAt], [0, undefined]);
      assert.equal((await alice.client.setIdle("box", null)).source, "site");
      await assert.rejects(alice.client.setIdle("box", -1), /minutes/);
      await assert.rejects(workspace.bob.client.setIdle(box.id, 5), /not found/);
      const audit = await workspace.admin.client.audit({ action: "environment.idle" });
      assert.ok(audit.items.length >= 3);
    } finally {
      await workspace.admin.client.updateInfrastructure({ idleStopMinutes: 0 });
    }
    assert.ok(vm.id);
  });

  test("a CVM's /proc is its own (LXCFS): free, nproc, cpuinfo, uptime; 2 CPUs and 4 GiB, in its services too", async () => {
    const out = await ok(cvmBin, ["ssh", "vm", "--", "sh", "-c", ownProcScript], { env: alice.env });
    // 2 CPUs on a node of as many: nproc's own count could not tell; OMP_NUM_THREADS (the third line) can.
    assertOwnProc(out, { cpus: 2, memoryMiB: 4096 });
    // Not only sessions: a unit systemd starts (a service a user enables) gets the CVM's CPUs too.
    const unit = await ok(
      cvmBin,
      [
        "ssh",
        "--user",
        "root",
        "vm",
        "--",
        "systemd-run",
        "--quiet",
        "--wait",
        "--pipe",
        "printenv",
        "OMP_NUM_THREADS",
      ],
      { env: alice.env },
    );
    assert.equal(unit, "2\n");
    const log = [];
    for await (const item of alice.client.logs("vm", { build: vm.buildId })) if (!("end" in item)) log.push(item.text);
    assert.ok(
      log.some((line) => /^\/proc: lxcfs serves /.test(line)),
      log.join("\n"),
    );
  });
});
