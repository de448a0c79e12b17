/**
 * A server whose engine is stuck on one workload still starts, serves every
 * other environment and stops (a CI run hung for an hour on a restarted
 * server that waited on Docker 20.10, stuck removing seven containers). The
 * provider is the FAKE one, scripted never to answer a removal: a real
 * engine cannot be brought to that on purpose.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { EnvironmentState } from "../../src/core/environment.js";
import { createFakeProvider } from "../../src/providers/fake/index.js";
import { type SignedIn, startTestServer } from "../harness/server.js";

async function until(admin: SignedIn, name: string, state: EnvironmentState): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await admin.environment(name)).state !== state) {
    if (Date.now() > deadline) assert.fail(`${name} is not ${state}`);
    await sleep(50);
  }
}

test("a restart that finds a delete the engine never finishes: the server answers, the rest works, and it stops", {
  timeout: 60_000,
}, async () => {
  const fake = createFakeProvider({ script: { stepMs: 1 } });
  const server = await startTestServer({ provider: fake, serverOptions: { startupWaitMs: 500 } });
  let closed = false;
  try {
    const admin = await server.firstAdmin();
    const stuck = await admin.createEnvironment({ name: "stuck", image: "debian:12" });
    await until(admin, "stuck", "running");
    // As a server killed in the middle of the delete leaves it, with an engine that will not finish it.
    fake.script("stuck", { removeHangs: true });
    const left = await server.server.store.environments.get(stuck.id);
    assert.ok(left);
    await server.server.store.environments.update(left.id, left.version, { state: "deleting" });

    const began = Date.now();
    await server.restart();
    assert.ok(Date.now() - began < 5000, `the restarted server answered after ${Date.now() - began} ms`);
    assert.equal((await admin.environment("stuck")).state, "deleting", "still being settled, and shown so");
    await admin.createEnvironment({ name: "other", image: "debian:12" });
    await until(admin, "other", "running");

    const closing = Date.now();
    await server.close();
    closed = true;
    assert.ok(Date.now() - closing < 15_000, `the server stopped after ${Date.now() - closing} ms`);
  } finally {
    if (!closed) await server.close();
  }
});
