/**
 * Reconcile on the real service and a real SQLite store with the fake
 * provider: a restart fails the builds no process runs any more (on a shared
 * store only those nobody advanced for a while), fails running environments
 * whose workload vanished, leaves the rest, and reports and removes orphans.
 * Showing a running environment refreshes it from the provider.
 */

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import type { CvmError } from "../../core/errors.js";
import * as fixtures from "../../testing/fixtures.js";
import { startTestService, type TestService } from "../../testing/service.js";
import { keepingHome } from "./actions.js";

const minutesAgo = (n: number) => new Date(Date.now() - n * 60_000).toISOString();

describe("reconcile", () => {
  let t: TestService;
  afterEach(() => t.close());

  /** Environments left by a server that stopped, written straight into the store with no workload behind them. */
  async function leftBehind() {
    const { environments } = t.store;
    const owner = t.member;
    return {
      pulling: await environments.create(
        fixtures.environment({ owner, name: "was-pulling", state: "pulling", createdAt: minutesAgo(11) }),
      ),
      queued: await environments.create(fixtures.environment({ owner, name: "just-queued" })),
      stopping: await environments.create(fixtures.environment({ owner, name: "was-stopping", state: "stopping" })),
      running: await environments.create(fixtures.environment({ owner, name: "was-running", state: "running" })),
      stopped: await environments.create(fixtures.environment({ owner, name: "was-stopped", state: "stopped" })),
      failed: await environments.create(fixtures.environment({ owner, name: "was-failed", state: "failed" })),
    };
  }

  test("the store's only writer fails every unfinished build and every running environment without a workload", async () => {
    t = await startTestService();
    const left = await leftBehind();
    const report = await t.restart();
    const state = async (id: string) => t.store.environments.get(id);
    for (const environment of [left.pulling, left.queued]) {
      const after = await state(environment.id);
      assert.equal(after?.state, "failed", environment.name);
      assert.equal(after?.stateReason, "interrupted by a server restart");
    }
    const stopped = await state(left.stopping.id);
    assert.equal(stopped?.state, "stopped", "a stop left halfway is finished");
    assert.equal(stopped?.stateReason, "finished after interrupted by a server restart");
    const running = await state(left.running.id);
    assert.equal(running?.state, "failed");
    assert.equal(running?.stateReason, "workload vanished: no fake workload for this environment");
    assert.deepEqual(
      running?.timeline.map((c) => c.state),
      ["running", "failed"],
    );
    assert.equal((await state(left.stopped.id))?.state, "stopped");
    assert.equal((await state(left.failed.id))?.state, "failed");
    assert.deepEqual(report.vanished.map((v) => v.name).sort(), ["just-queued", "was-pulling", "was-running"]);
    assert.deepEqual(report.finished, [{ id: left.stopping.id, name: "was-stopping", action: "stop" }]);
  });

  test("a server killed in the middle of a stop or a delete: the next one finishes it, keeping home when asked", async () => {
    t = await startTestService({ script: { stepMs: 1 } });
    const names = ["halted", "erased", "erased-keeping-home"];
    for (const name of names) {
      const created = await t.service.create(t.member, { name, image: "debian:12" });
      await t.finished(created.buildId as string);
    }
    const leave = async (name: string, state: "stopping" | "deleting", reason?: string) => {
      const environment = await t.service.find(t.member, name);
      await t.store.environments.update(environment.id, environment.version, { state, stateReason: reason });
      return environment;
    };
    const halted = await leave("halted", "stopping");
    const erased = await leave("erased", "deleting");
    const keptHome = await leave("erased-keeping-home", "deleting", keepingHome);
    t.provider.calls.length = 0;
    const report = await t.restart();
    assert.deepEqual(
      report.finished.map((f) => `${f.name} ${f.action}`),
      ["halted stop", "erased delete", "erased-keeping-home delete"],
    );
    assert.equal((await t.store.environments.get(halted.id))?.state, "stopped");
    assert.equal(t.provider.hasWorkload(halted.id), true, "stopped, not removed");
    for (const gone of [erased, keptHome]) {
      assert.equal(await t.store.environments.get(gone.id), undefined);
      assert.equal(t.provider.hasWorkload(gone.id), false);
    }
    assert.deepEqual(
      t.provider.calls.map((c) => `${c.method} ${c.keepHome ?? ""}`.trim()),
      ["stop", "remove false", "remove true"],
    );
  });

  // Bounded itself: without the feature the delete waits forever.
  test("a delete whose removal never answers (an engine stuck on the container) fails in time, saying so", {
    timeout: 10_000,
  }, async () => {
    t = await startTestService({ script: { stepMs: 1 }, workloadChangeTimeoutMs: 300 });
    for (const name of ["stuck", "fine"]) {
      const created = await t.service.create(t.member, { name, image: "debian:12" });
      await t.finished(created.buildId as string);
    }
    t.provider.script("stuck", { removeHangs: true });
    // The user's own delete: a 503 that names what did not end, and the environment failed, not left deleting.
    const refused = await t.service.remove(t.member, "stuck", { keepHome: false }).then(
      () => undefined,
      (error: CvmError) => error,
    );
    assert.equal(refused?.code, "UNAVAILABLE");
    assert.match(refused?.message ?? "", /removing its workload did not end within 0\.3 s/);
    const stuck = await t.service.find(t.member, "stuck");
    assert.equal(stuck.state, "failed");
    assert.match(stuck.stateReason ?? "", /^delete failed: removing its workload did not end within 0\.3 s/);
    // A delete a killed server left halfway: the next one's reconcile ends, and finishes the rest.
    for (const name of ["stuck", "fine"]) {
      const environment = await t.service.find(t.member, name);
      await t.store.environments.update(environment.id, environment.version, { state: "deleting" });
    }
    const report = await t.restartAfterKill();
    assert.deepEqual(
      report.finished.map((f) => f.name),
      ["fine"],
    );
    assert.deepEqual(
      report.vanished.map((v) => `${v.name}: ${v.reason}`),
      ["stuck: delete failed after interrupted by a server restart: removing its workload did not end within 0.3 s"],
    );
    assert.equal((await t.service.find(t.member, "stuck")).state, "failed", "it can be deleted again");
  });

  test("every build ends with an outcome: builds left open by a killed server end as their environment stands", async () => {
    t = await startTestService();
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.finished(created.buildId as string);
    // A killed server's leftovers: a build that brought its environment up and one cut off before, neither with an end.
    const open = await t.store.builds.create(created.id, new Date().toISOString());
    const running = await t.service.find(t.member, "dev");
    const current = await t.store.builds.create(created.id, new Date().toISOString());
    await t.store.environments.update(running.id, running.version, { buildId: current.id });
    await t.restart();
    assert.equal((await t.store.builds.get(open.id))?.outcome, "failed");
    assert.equal((await t.store.builds.get(current.id))?.outcome, "running");
    const log = (await t.store.builds.logs(open.id)).map((l) => l.text);
    assert.deepEqual(log, ["build ended: no server was running it any more"]);
    for (const build of await t.store.builds.listForEnvironment(created.id)) {
      assert.ok(build.outcome && build.finishedAt, `${build.id} ended`);
    }
  });

  test("a build cut off where the provider cannot resume: failed, and what it made is removed", async () => {
    t = await startTestService({ script: { hangAt: "starting" } });
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.until(created.id, ["starting"]);
    assert.ok(t.provider.hasWorkload(created.id));
    // As a kill -9 leaves it: the build is open, its workload half made; the next server finds them.
    const report = await t.restartAfterKill();
    assert.deepEqual(
      report.vanished.map((v) => v.reason),
      ["interrupted by a server restart"],
    );
    assert.equal(t.provider.hasWorkload(created.id), false, "the workload it made is gone");
    assert.equal((await t.store.builds.get(created.buildId as string))?.outcome, "failed");
    const environment = await t.store.environments.get(created.id);
    assert.equal(environment?.state, "failed");
  });

  test("on a shared store, only builds nobody advanced for ten minutes are failed", async () => {
    t = await startTestService({ shared: true });
    const left = await leftBehind();
    await t.restart();
    const pulling = await t.store.environments.get(left.pulling.id);
    assert.equal(pulling?.state, "failed");
    assert.match(pulling?.stateReason ?? "", /^interrupted: no server has advanced it for 11 minutes/);
    assert.equal((await t.store.environments.get(left.queued.id))?.state, "queued", "another replica may build it");
    assert.equal((await t.store.environments.get(left.stopping.id))?.state, "stopping");
    assert.equal((await t.store.environments.get(left.running.id))?.state, "failed");
  });

  test("a running environment whose workload vanished is failed; one whose workload is there is left", async () => {
    t = await startTestService();
    const kept = await t.service.create(t.member, { name: "kept", image: "debian:12" });
    const gone = await t.service.create(t.member, { name: "gone", image: "debian:12" });
    await t.finished(kept.buildId as string);
    await t.finished(gone.buildId as string);
    t.provider.vanish(gone.id);
    const report = await t.service.reconcile({ removeOrphans: false });
    assert.deepEqual(report.vanished, [
      { id: gone.id, name: "gone", reason: "workload vanished: no fake workload for this environment" },
    ]);
    assert.equal((await t.service.find(t.member, "kept")).state, "running");
    assert.equal((await t.service.find(t.member, "gone")).state, "failed");
  });

  test("workloads without an environment are reported, and removed only when asked", async () => {
    t = await startTestService();
    const ref = t.provider.orphan("env_nobodys");
    assert.deepEqual((await t.service.reconcile({ removeOrphans: false })).orphans, [
      { ref, environmentId: "env_nobodys", removed: false },
    ]);
    assert.ok(t.provider.hasWorkload("env_nobodys"));
    assert.deepEqual((await t.service.reconcile({ removeOrphans: true })).orphans, [
      { ref, environmentId: "env_nobodys", removed: true },
    ]);
    assert.equal(t.provider.hasWorkload("env_nobodys"), false);
    assert.deepEqual((await t.service.reconcile({ removeOrphans: true })).orphans, []);
  });

  test("a build running in this process is left to finish", async () => {
    t = await startTestService({ script: { stepMs: 40 } });
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.until(created.id, ["pulling"]);
    assert.deepEqual(await t.service.reconcile({ removeOrphans: false }), {
      vanished: [],
      resumed: [],
      finished: [],
      orphans: [],
    });
    assert.equal((await t.finished(created.buildId as string)).outcome, "running");
  });
});

describe("showing a running environment", () => {
  let t: TestService;
  afterEach(() => t.close());

  test("refreshes systemd's and Docker's status from the provider", async () => {
    t = await startTestService();
    t.provider.script("dev", { observation: { systemd: "starting", docker: "not-answering" } });
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.finished(created.buildId as string);
    assert.equal((await t.service.show(t.member, "dev")).systemd, "starting");
    t.provider.script("dev", { observation: { systemd: "degraded", failedUnits: ["a.service"], docker: "answering" } });
    await t.service.stop(t.member, "dev");
    const started = await t.service.start(t.member, "dev");
    await t.finished(started.buildId as string);
    const shown = await t.service.show(t.member, "dev");
    assert.equal(shown.systemd, "degraded");
    assert.deepEqual(shown.failedUnits, ["a.service"]);
    assert.equal(shown.docker, "answering");
  });

  test("fails it when its workload stopped or vanished behind cvm's back, with the reason", async () => {
    t = await startTestService();
    for (const name of ["oom", "gone"]) {
      const created = await t.service.create(t.member, { name, image: "debian:12" });
      await t.finished(created.buildId as string);
    }
    t.provider.stopBehindBack((await t.service.find(t.member, "oom")).id, "killed: out of memory");
    t.provider.vanish((await t.service.find(t.member, "gone")).id);
    const oom = await t.service.show(t.member, "oom");
    assert.equal(oom.state, "failed");
    assert.equal(oom.stateReason, "workload stopped: killed: out of memory");
    const gone = await t.service.show(t.member, "gone");
    assert.equal(gone.state, "failed");
    assert.equal(gone.stateReason, "workload vanished: no fake workload for this environment");
  });
});
