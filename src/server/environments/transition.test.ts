/**
 * The one write of an environment's state, on a real SQLite store: what the
 * state table forbids is refused and nothing is written; a move writes the
 * timeline, the build-log line and the event; a write that loses a race is
 * planned again against what the other writer wrote, and a second loss is a 409.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Environment } from "../../core/environment.js";
import { CvmError } from "../../core/errors.js";
import type { EnvironmentPatch, Store } from "../../core/store.js";
import { openStore } from "../../store/index.js";
import * as fixtures from "../../testing/fixtures.js";
import { type BusEvent, EventBus } from "../event-bus.js";
import { EnvironmentTransitions, timelineLimit } from "./transition.js";

describe("transition", () => {
  let dataDir: string;
  let store: Store;
  let bus: EventBus;
  let transitions: EnvironmentTransitions;
  const events: BusEvent[] = [];
  let owner: { id: string; email: string };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "cvm-transition-test-"));
    store = await openStore({ dataDir });
    bus = new EventBus();
    bus.subscribe((event) => events.push(event));
    transitions = new EnvironmentTransitions({ store, bus });
    owner = await store.users.create(fixtures.newUser());
  });

  after(async () => {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** An environment in the store with a build whose log receives its state lines. */
  async function stored(overrides: Partial<Environment> = {}): Promise<Environment> {
    const created = await store.environments.create(fixtures.environment({ owner, ...overrides }));
    const build = await store.builds.create(created.id, created.createdAt);
    return (await store.environments.update(created.id, created.version, { buildId: build.id })) as Environment;
  }

  const logOf = async (environment: Environment) =>
    (await store.builds.logs(environment.buildId as string)).map((line) => line.text);

  test("a move writes the state, its reason, the timeline, a build-log line and an event", async () => {
    const environment = await stored({ state: "pulling" });
    events.length = 0;
    const moved = await transitions.transition(environment.id, () => ({ to: "failed", reason: "no such image" }));
    assert.ok(moved?.changed);
    assert.equal(moved.before.state, "pulling");
    assert.equal(moved.after.state, "failed");
    assert.equal(moved.after.stateReason, "no such image");
    assert.deepEqual(
      moved.after.timeline.map((c) => [c.state, c.reason]),
      [
        ["pulling", undefined],
        ["failed", "no such image"],
      ],
    );
    assert.deepEqual(await logOf(environment), ["state: pulling → failed (no such image)"]);
    assert.deepEqual(events, [{ type: "environment", environment: moved.after }]);
    assert.deepEqual(await store.environments.get(environment.id), moved.after);
  });

  test("a move the state table forbids is a 409 naming both states, and nothing is written", async () => {
    const environment = await stored({ state: "stopped" });
    for (const to of ["running", "pulling", "stopped", "deleted"] as const) {
      await assert.rejects(
        transitions.transition(environment.id, () => ({ to })),
        (error: unknown) =>
          error instanceof CvmError &&
          error.code === "CONFLICT" &&
          error.message.includes(`stopped now; it cannot become ${to}`),
      );
    }
    assert.deepEqual(await store.environments.get(environment.id), environment);
    assert.deepEqual(await logOf(environment), []);
  });

  test("a plan that leaves the environment writes nothing; a missing environment is undefined", async () => {
    const environment = await stored({ state: "running" });
    const left = await transitions.transition(environment.id, () => undefined);
    assert.deepEqual(left, { before: environment, after: environment, changed: false });
    assert.equal(await transitions.transition("env_missing", () => ({ to: "failed" })), undefined);
  });

  test("a fields-only change keeps the state and the timeline, and writes no log line", async () => {
    const environment = await stored({ state: "running" });
    const refreshed = await transitions.transition(environment.id, () => ({ patch: { systemd: "degraded" } }));
    assert.equal(refreshed?.after.state, "running");
    assert.equal(refreshed?.after.systemd, "degraded");
    assert.deepEqual(refreshed?.after.timeline, environment.timeline);
    assert.deepEqual(await logOf(environment), []);
  });

  /** The store with another writer (a replica, a build) that gets in just before each of the next `times` writes. */
  function raced(times: number, patch: EnvironmentPatch): EnvironmentTransitions {
    const environments = {
      ...store.environments,
      async update(id: string, version: number, mine: EnvironmentPatch) {
        if (times-- > 0) await store.environments.update(id, version, patch);
        return store.environments.update(id, version, mine);
      },
    };
    return new EnvironmentTransitions({ store: { ...store, environments }, bus });
  }

  test("a lost race is planned again against the winner's write", async () => {
    const environment = await stored({ state: "running" });
    const seen: string[] = [];
    const moved = await raced(1, { state: "stopping" }).transition(environment.id, (current) => {
      seen.push(current.state);
      return current.state === "running" ? { to: "stopping" } : { to: "stopped" };
    });
    assert.deepEqual(seen, ["running", "stopping"]);
    assert.equal(moved?.after.state, "stopped");
  });

  test("a second lost race is a 409: the environment is changing too fast", async () => {
    const environment = await stored({ state: "running" });
    await assert.rejects(
      raced(2, { systemd: "running" }).transition(environment.id, () => ({ to: "stopping" })),
      (error: unknown) => error instanceof CvmError && error.code === "CONFLICT" && /too fast/.test(error.message),
    );
    assert.equal((await store.environments.get(environment.id))?.state, "running");
  });

  test("fail moves to failed only from the states given; otherwise the other move stands", async () => {
    const building = await stored({ state: "creating" });
    assert.equal((await transitions.fail(building.id, "out of disk", ["creating"]))?.after.state, "failed");
    const stopping = await stored({ state: "stopping" });
    const left = await transitions.fail(stopping.id, "out of disk", ["creating"]);
    assert.equal(left?.changed, false);
    assert.equal(left?.after.state, "stopping");
  });

  test("a new build opens with the change's line and becomes the current one", async () => {
    const environment = await stored({ state: "stopped" });
    const started = await transitions.transition(environment.id, () => ({ to: "starting", newBuild: true }));
    assert.ok(started);
    assert.notEqual(started.after.buildId, environment.buildId);
    assert.deepEqual(await logOf(started.after), ["state: stopped → starting"]);
    assert.deepEqual(await logOf(environment), [], "the old build's log is left as it was");
    assert.equal((await store.builds.listForEnvironment(environment.id)).length, 2);
  });

  test(`the timeline keeps its last ${timelineLimit} changes`, async () => {
    const at = new Date().toISOString();
    const environment = await stored({
      state: "running",
      timeline: Array.from({ length: timelineLimit }, () => ({ state: "running" as const, at })),
    });
    const moved = await transitions.transition(environment.id, () => ({ to: "stopping" }));
    assert.equal(moved?.after.timeline.length, timelineLimit);
    assert.equal(moved?.after.timeline.at(-1)?.state, "stopping");
  });
});
