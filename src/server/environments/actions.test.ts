/**
 * The user's actions on the real service and a real SQLite store, with the
 * fake provider: what each action may begin from, concurrent actions on one
 * environment, a build's course and its outcome, stop and delete in the
 * middle of a build, a provider that fails, and the audit trail.
 */

import assert from "node:assert/strict";
import { after, afterEach, beforeEach, describe, test } from "node:test";
import type { EnvironmentState } from "../../core/environment.js";
import { CvmError } from "../../core/errors.js";
import * as fixtures from "../../testing/fixtures.js";
import { startTestService, type TestService } from "../../testing/service.js";

async function refused(promise: Promise<unknown>, code: CvmError["code"], message?: RegExp): Promise<CvmError> {
  const error = await promise.then(
    () => assert.fail(`expected ${code}, got success`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof CvmError, String(error));
  assert.equal(error.code, code, error.message);
  if (message) assert.match(error.message, message);
  return error;
}

const states = (environment: { timeline: { state: EnvironmentState }[] }) => environment.timeline.map((c) => c.state);

describe("environment actions", () => {
  let t: TestService;
  beforeEach(async () => {
    t = await startTestService();
  });
  afterEach(() => t.close());

  test("create: queued, built through every state to running, with the log and the outcome", async () => {
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    assert.equal(created.state, "queued");
    assert.equal(created.runtime, "none");
    assert.ok(created.buildId);
    const build = await t.finished(created.buildId);
    assert.equal(build.outcome, "running");
    const running = await t.service.find(t.member, "dev");
    assert.equal(running.state, "running");
    assert.deepEqual(states(running), ["queued", "pulling", "creating", "starting", "running"]);
    const log = (await t.store.builds.logs(created.buildId)).map((l) => l.text);
    assert.equal(log[0], `state: queued (created by ${t.member.email})`);
    for (const line of ["state: queued → pulling", "state: pulling → creating", "state: starting → running"]) {
      assert.ok(log.includes(line), `${line} in\n${log.join("\n")}`);
    }
  });

  test("invalid specs are refused field by field, and nothing is created", async () => {
    const error = await refused(
      t.service.create(t.member, { name: "Dev_Box", image: "Debian:12", cpu: 0 }),
      "BAD_REQUEST",
    );
    assert.deepEqual(error.validations?.map((v) => v.field).sort(), ["cpu", "image", "name"]);
    assert.deepEqual(await t.store.environments.list({}), []);
  });

  test("a CVM while CVMs are off is refused on the cvm field; with them on it builds", async () => {
    const error = await refused(t.service.create(t.member, { name: "dev", image: "debian:12", cvm: true }), "CONFLICT");
    assert.match(error.message, /cvmEnabled/);
    assert.deepEqual(
      error.validations?.map((v) => v.field),
      ["cvm"],
    );
    assert.deepEqual(await t.store.environments.list({}), []);
    await t.store.settings.putInfrastructure(fixtures.settings({ cvmEnabled: true }));
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12", cvm: true });
    assert.equal(created.runtime, "userns");
    assert.equal((await t.finished(created.buildId as string)).outcome, "running");
  });

  test("each action begins only from its states; a refusal names the state and writes nothing", async () => {
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.finished(created.buildId as string);
    await refused(t.service.start(t.member, "dev"), "CONFLICT", /Cannot start an environment that is running/);
    await t.service.stop(t.member, "dev");
    const stopped = await t.service.find(t.member, "dev");
    await refused(t.service.stop(t.member, "dev"), "CONFLICT", /Cannot stop an environment that is stopped/);
    assert.deepEqual(await t.service.find(t.member, "dev"), stopped);
    assert.equal((await t.store.builds.listForEnvironment(created.id)).length, 1, "a refused action leaves no build");
  });

  test("concurrent starts of a stopped environment: exactly one begins, the others are a 409", async () => {
    const created = await t.service.create(t.member, { name: "race", image: "debian:12" });
    await t.finished(created.buildId as string);
    await t.service.stop(t.member, "race");
    const attempts = await Promise.allSettled(Array.from({ length: 5 }, () => t.service.start(t.member, "race")));
    assert.equal(attempts.filter((a) => a.status === "fulfilled").length, 1);
    for (const attempt of attempts.filter((a) => a.status === "rejected") as PromiseRejectedResult[]) {
      assert.ok(attempt.reason instanceof CvmError);
      assert.equal(attempt.reason.code, "CONFLICT");
      assert.match(attempt.reason.message, /Cannot start an environment that is (starting|running)/);
    }
    await t.until(created.id, ["running"]);
    assert.equal((await t.store.builds.listForEnvironment(created.id)).length, 2, "refused starts leave no build");
  });

  test("a start and a stop at once are taken in turn: the stop aborts the start's build", async () => {
    const created = await t.service.create(t.member, { name: "both", image: "debian:12" });
    await t.finished(created.buildId as string);
    await t.service.stop(t.member, "both");
    t.provider.script("both", { stepMs: 20 });
    const [started, stopped] = await Promise.allSettled([
      t.service.start(t.member, "both"),
      t.service.stop(t.member, "both"),
    ]);
    assert.equal(started.status, "fulfilled");
    assert.equal(stopped.status, "fulfilled");
    const after = await t.until(created.id, ["stopped"]);
    assert.deepEqual(states(after).slice(-3), ["starting", "stopping", "stopped"]);
  });

  test("stop in the middle of a build aborts it: stopped, the build ends stopped, the provider told to stop", async () => {
    t.provider.script("slow", { hangAt: "pulling" });
    const created = await t.service.create(t.member, { name: "slow", image: "debian:12" });
    await t.until(created.id, ["pulling"]);
    const stopped = await t.service.stop(t.member, "slow");
    assert.equal(stopped.state, "stopped");
    assert.equal((await t.finished(created.buildId as string)).outcome, "stopped");
    assert.deepEqual(states(stopped), ["queued", "pulling", "stopping", "stopped"]);
    const log = (await t.store.builds.logs(created.buildId as string)).map((l) => l.text);
    assert.ok(log.includes("build ended: stopped by the user"), log.join("\n"));
    assert.deepEqual(
      t.provider.calls.filter((c) => c.environmentId === created.id).map((c) => c.method),
      ["build", "stop"],
    );
  });

  test("delete in the middle of a build aborts it and leaves no environment and no workload", async () => {
    t.provider.script("fleeting", { hangAt: "creating" });
    const created = await t.service.create(t.member, { name: "fleeting", image: "debian:12" });
    await t.until(created.id, ["creating"]);
    const deleted: string[] = [];
    t.bus.subscribe((event) => {
      if (event.type === "deleted") deleted.push(event.id);
    });
    await t.service.remove(t.member, "fleeting", { keepHome: false });
    assert.equal(await t.store.environments.get(created.id), undefined);
    assert.equal(t.provider.hasWorkload(created.id), false);
    assert.deepEqual(deleted, [created.id]);
    const [entry] = (await t.store.audit.list({ action: "environment.delete" }, { limit: 1 })).items;
    assert.equal((entry.before as { name: string }).name, "fleeting", "the audit log keeps what was deleted");
  });

  test("a build that fails at a step fails with its reason, and the log says so", async () => {
    t.provider.script("broken", { failAt: "pulling", reason: "manifest unknown: no such image" });
    const created = await t.service.create(t.member, { name: "broken", image: "debian:12" });
    assert.equal((await t.finished(created.buildId as string)).outcome, "failed");
    const failed = await t.service.find(t.member, "broken");
    assert.equal(failed.state, "failed");
    assert.equal(failed.stateReason, "manifest unknown: no such image");
    assert.deepEqual(states(failed), ["queued", "pulling", "failed"]);
    const log = (await t.store.builds.logs(created.buildId as string)).map((l) => l.text);
    assert.ok(log.includes("build failed: manifest unknown: no such image"), log.join("\n"));
    assert.ok(log.includes("state: pulling → failed (manifest unknown: no such image)"), log.join("\n"));
  });

  test("a workload that does not run after its build fails the build with the provider's reason", async () => {
    t.provider.script("exits", { observation: { running: false, reason: "exited with code 1" } });
    const created = await t.service.create(t.member, { name: "exits", image: "debian:12" });
    assert.equal((await t.finished(created.buildId as string)).outcome, "failed");
    assert.equal((await t.service.find(t.member, "exits")).stateReason, "exited with code 1");
  });

  test("rebuild: back to queued with a new build, the old workload discarded, running again", async () => {
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.finished(created.buildId as string);
    const rebuilding = await t.service.rebuild(t.member, "dev", { keepDockerData: true });
    assert.equal(rebuilding.state, "queued");
    assert.notEqual(rebuilding.buildId, created.buildId);
    assert.equal((await t.finished(rebuilding.buildId as string)).outcome, "running");
    const log = (await t.store.builds.logs(rebuilding.buildId as string)).map((l) => l.text);
    assert.equal(log[0], "state: running → queued");
    assert.ok(log.includes("discarding the old workload (keeping the inner Docker data)"), log.join("\n"));
    assert.deepEqual(
      t.provider.calls.map((c) => c.method),
      ["build", "discard", "build"],
    );
  });

  test("rebuild with another image: a failed environment builds from it, keeping its record; a bad image is refused", async () => {
    t.provider.script("broken:1", { failAt: "pulling", reason: "manifest unknown" });
    const created = await t.service.create(t.member, { name: "dev", image: "broken:1" });
    assert.equal((await t.finished(created.buildId as string)).outcome, "failed");
    const refusal = await refused(t.service.rebuild(t.member, "dev", { image: "Not An Image" }), "BAD_REQUEST");
    assert.deepEqual(
      refusal.validations?.map((v) => v.field),
      ["image"],
    );
    const rebuilding = await t.service.rebuild(t.member, "dev", { image: "debian:12" });
    assert.equal(rebuilding.image, "debian:12");
    assert.equal((await t.finished(rebuilding.buildId as string)).outcome, "running");
    assert.equal((await t.service.find(t.member, "dev")).image, "debian:12");
  });

  test("a stop the provider cannot do fails the environment and answers 503-class UNAVAILABLE", async () => {
    const created = await t.service.create(t.member, { name: "stuck", image: "debian:12" });
    await t.finished(created.buildId as string);
    t.provider.script("stuck", { stopFails: "the engine does not answer" });
    await refused(t.service.stop(t.member, "stuck"), "UNAVAILABLE", /Could not stop the environment: the engine/);
    const failed = await t.service.find(t.member, "stuck");
    assert.equal(failed.state, "failed");
    assert.equal(failed.stateReason, "stop failed: the engine does not answer");
  });

  test("the audit log keeps every action with the environment before and after", async () => {
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.finished(created.buildId as string);
    await t.service.stop(t.member, "dev");
    const started = await t.service.start(t.member, "dev");
    await t.finished(started.buildId as string);
    await t.service.rebuild(t.member, "dev", {});
    await t.until(created.id, ["running"]);
    await t.service.remove(t.member, "dev", { keepHome: true });
    const entries = (await t.store.audit.list({ actorId: t.member.id }, { limit: 50 })).items;
    // Entries of the same millisecond have no order between them: the set is what counts.
    assert.deepEqual(entries.map((e) => e.action).sort(), [
      "environment.create",
      "environment.delete",
      "environment.rebuild",
      "environment.start",
      "environment.stop",
    ]);
    const stop = entries.find((e) => e.action === "environment.stop");
    assert.ok(stop);
    assert.equal((stop.before as { state: string }).state, "running");
    assert.equal((stop.after as { state: string }).state, "stopped");
    assert.equal((stop.after as { timeline?: unknown }).timeline, undefined, "the log replaces the timeline");
  });

  test("a shutting-down server begins no build", async () => {
    const created = await t.service.create(t.member, { name: "dev", image: "debian:12" });
    await t.finished(created.buildId as string);
    await t.service.stop(t.member, "dev");
    await t.service.close();
    await refused(t.service.start(t.member, "dev"), "UNAVAILABLE", /shutting down/);
  });
});

describe("who may see and act on an environment", async () => {
  const t = await startTestService();
  after(() => t.close());

  test("another's environment is not found for a member, by id and by name; an admin sees it", async () => {
    const other = await t.user();
    const theirs = await t.store.environments.create(fixtures.environment({ owner: other, name: "theirs" }));
    for (const ref of [theirs.id, "theirs"]) {
      await refused(t.service.find(t.member, ref), "NOT_FOUND", /not found/);
      await refused(t.service.show(t.member, ref), "NOT_FOUND");
      await refused(t.service.start(t.member, ref), "NOT_FOUND");
      await refused(t.service.stop(t.member, ref), "NOT_FOUND");
      await refused(t.service.remove(t.member, ref, { keepHome: false }), "NOT_FOUND");
      await refused(t.service.builds(t.member, ref), "NOT_FOUND");
    }
    assert.equal((await t.service.find(other, "theirs")).id, theirs.id);
    assert.equal((await t.service.find(t.admin, theirs.id)).name, "theirs");
    assert.equal(t.service.canSee(t.admin, theirs), true);
    assert.equal(t.service.canSee(t.member, theirs), false);
  });

  test("listing others' environments is forbidden to members; admins filter by owner, state and kind", async () => {
    const owner = await t.user();
    const cvm = await t.store.environments.create(
      fixtures.environment({ owner, name: "box", cvm: true, state: "stopped" }),
    );
    const plain = await t.store.environments.create(fixtures.environment({ owner, name: "plain", state: "failed" }));
    await refused(t.service.list(t.member, { owner: "all", limit: 10 }), "FORBIDDEN");
    await refused(t.service.list(t.member, { owner: owner.id, limit: 10 }), "FORBIDDEN");
    const ids = async (query: Omit<Parameters<typeof t.service.list>[1], "limit">) =>
      (await t.service.list(t.admin, { ...query, limit: 10 })).items.map((e) => e.id).sort();
    assert.deepEqual(await ids({ owner: owner.id }), [cvm.id, plain.id].sort());
    assert.deepEqual(await ids({ owner: owner.id, kind: "cvm" }), [cvm.id]);
    assert.deepEqual(await ids({ owner: owner.id, state: "failed" }), [plain.id]);
    assert.deepEqual(await ids({ owner: "me" }), []);
  });

  test("a build id of another environment is not found through this one", async () => {
    const mine = await t.service.create(t.member, { name: "mine", image: "debian:12" });
    const other = await t.service.create(t.admin, { name: "other", image: "debian:12" });
    assert.equal((await t.service.buildOf(t.member, "mine")).id, mine.buildId);
    assert.equal((await t.service.buildOf(t.member, "mine", "latest")).id, mine.buildId);
    await refused(t.service.buildOf(t.member, "mine", other.buildId), "NOT_FOUND", /Build/);
    await t.finished(mine.buildId as string);
    await t.finished(other.buildId as string);
  });
});
