/**
 * Builds in the background, on the real service and a real SQLite store with
 * the fake provider: a build never moves its environment backwards, stops
 * once someone else moved the environment on, and a server that shuts down
 * mid-build fails the build, or leaves it for the next server where the
 * provider can resume it.
 */

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { startTestService, type TestService } from "../../testing/service.js";

describe("build runner", () => {
  let t: TestService;
  afterEach(() => t.close());

  test("a start whose workload is gone builds it again without moving the environment backwards", async () => {
    t = await startTestService();
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.finished(created.buildId as string);
    await t.service.stop(t.member, "dev");
    t.provider.vanish(created.id);
    const started = await t.service.start(t.member, "dev");
    assert.equal((await t.finished(started.buildId as string)).outcome, "running");
    const environment = await t.service.find(t.member, "dev");
    assert.deepEqual(
      environment.timeline.slice(-3).map((c) => c.state),
      ["stopped", "starting", "running"],
      "pulling and creating again come after starting: they change nothing",
    );
    const log = (await t.store.builds.logs(started.buildId as string)).map((l) => l.text);
    assert.ok(log.includes("fake: no workload for this environment any more; building it again"), log.join("\n"));
  });

  test("slow steps: the environment shows each build state while the build is in it", async () => {
    t = await startTestService({ script: { stepMs: 60 } });
    const seen: string[] = [];
    t.bus.subscribe((event) => {
      if (event.type === "environment" && seen.at(-1) !== event.environment.state) seen.push(event.environment.state);
    });
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.until(created.id, ["creating"]);
    assert.equal((await t.service.find(t.member, "dev")).state, "creating");
    await t.finished(created.buildId as string);
    assert.deepEqual(seen, ["queued", "pulling", "creating", "starting", "running"]);
  });

  test("a build whose environment another server stopped meanwhile ends stopped and leaves the stop standing", async () => {
    t = await startTestService({ script: { stepMs: 50 } });
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    const pulling = await t.until(created.id, ["pulling"]);
    // Another replica's stop: a write to the shared store this process's build did not make.
    await t.store.environments.update(pulling.id, pulling.version, { state: "stopping" });
    assert.equal((await t.finished(created.buildId as string)).outcome, "stopped");
    const environment = await t.service.find(t.member, "dev");
    assert.equal(environment.state, "stopping");
    const log = (await t.store.builds.logs(created.buildId as string)).map((l) => l.text);
    assert.ok(log.includes("build failed: the environment is stopping now"), log.join("\n"));
  });

  test("a server stopping mid-build fails the build as interrupted where the provider cannot resume it", async () => {
    t = await startTestService({ script: { hangAt: "creating" } });
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.until(created.id, ["creating"]);
    await t.service.close();
    const build = await t.finished(created.buildId as string);
    assert.equal(build.outcome, "failed");
    const environment = await t.store.environments.get(created.id);
    assert.equal(environment?.state, "failed");
    assert.equal(environment?.stateReason, "interrupted: the server is shutting down");
    assert.equal(t.provider.hasWorkload(created.id), false, "what the build made is removed");
  });

  test("a failed build leaves nothing running: a new workload is removed, one being started is stopped", async () => {
    t = await startTestService();
    t.provider.script("made", { failAt: "starting", reason: "systemd did not start" });
    const made = await t.service.create(t.member, { name: "made", image: "debian:12" });
    assert.equal((await t.finished(made.buildId as string)).outcome, "failed");
    assert.equal(t.provider.hasWorkload(made.id), false);
    const log = (await t.store.builds.logs(made.buildId as string)).map((l) => l.text);
    assert.equal(log.at(-1), "removed the workload this build made (home kept)");

    const kept = await t.service.create(t.member, { name: "kept", image: "debian:12" });
    await t.finished(kept.buildId as string);
    await t.service.stop(t.member, "kept");
    t.provider.script("kept", { failAt: "starting" });
    const started = await t.service.start(t.member, "kept");
    assert.equal((await t.finished(started.buildId as string)).outcome, "failed");
    assert.equal(t.provider.hasWorkload(kept.id), true, "a start keeps the workload it did not make");
    assert.equal((await t.provider.observe(await t.service.find(t.member, "kept"))).running, false);
    assert.deepEqual(
      t.provider.calls.filter((c) => c.environmentId === kept.id).map((c) => c.method),
      ["build", "stop", "start", "stop"],
    );
  });

  test("a start cut off by a server that died is resumed as a start, not built afresh", async () => {
    t = await startTestService({ resumesBuilds: true });
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.finished(created.buildId as string);
    await t.service.stop(t.member, "dev");
    t.provider.script("dev", { hangAt: "starting" });
    const started = await t.service.start(t.member, "dev");
    const hanging = async () =>
      (await t.store.builds.logs(started.buildId as string)).some((l) => l.text === "fake: starting debian:12");
    while (!(await hanging())) await new Promise((resolve) => setTimeout(resolve, 5));
    t.provider.script("dev", {});
    t.provider.calls.length = 0;
    const report = await t.restartAfterKill();
    assert.deepEqual(report.resumed, [{ id: created.id, name: "dev" }]);
    assert.equal((await t.finished(started.buildId as string)).outcome, "running");
    assert.deepEqual(
      t.provider.calls.map((c) => c.method),
      ["start"],
    );
  });

  test("a server stopping mid-build leaves it open where the provider resumes builds; the next server finishes it", async () => {
    t = await startTestService({ resumesBuilds: true, script: { hangAt: "starting" } });
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.until(created.id, ["starting"]);
    t.provider.script("dev", {});
    const report = await t.restart();
    assert.deepEqual(report.vanished, [], "a resumed build is not reported as vanished");
    const build = await t.finished(created.buildId as string);
    assert.equal(build.outcome, "running");
    const environment = await t.service.find(t.member, "dev");
    assert.equal(environment.buildId, created.buildId, "the same build, resumed");
    assert.deepEqual(
      environment.timeline.map((c) => c.state),
      ["queued", "pulling", "creating", "starting", "running"],
      "the resumed build retraces its steps without moving backwards",
    );
    const log = (await t.store.builds.logs(created.buildId as string)).map((l) => l.text);
    for (const line of [
      "server stopping: the build goes on when a server starts again",
      "build resumed after interrupted by a server restart: continuing with what it made",
      `fake: adopting the workload of build ${created.buildId}`,
    ]) {
      assert.ok(log.includes(line), `${line} in\n${log.join("\n")}`);
    }
  });
});
