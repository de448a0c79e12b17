/**
 * Two installations on one engine (issue 11, item 5): two cvm servers, each
 * with its own store and so its own installation id, on the same host engine.
 * Every object one makes carries its id; the other neither lists it nor
 * removes it, not even when asked to remove orphans.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import type { CvmClient } from "../../src/client/index.js";
import { installationId } from "../../src/server/installation.js";
import { openProvider, startTestServer, type TestServer } from "../harness/server.js";

const run = promisify(execFile);
const image = process.env.CVM_TEST_IMAGE_PLAIN;
const skip = !image && "CVM_TEST_IMAGE_PLAIN is not set: run through `npm test -- FILE`";

async function follow(client: CvmClient, ref: string): Promise<string | undefined> {
  for await (const item of client.logs(ref, { follow: true, signal: AbortSignal.timeout(120_000) })) {
    if ("end" in item) return item.outcome;
  }
  return undefined;
}

async function labelsOf(kind: "container" | "volume", name: string): Promise<Record<string, string>> {
  const field = kind === "container" ? "{{json .Config.Labels}}" : "{{json .Labels}}";
  const { stdout } = await run("docker", [kind, "inspect", "-f", field, name]);
  return JSON.parse(stdout) as Record<string, string>;
}

describe("two installations on one engine", { skip }, () => {
  let first: TestServer;
  let second: TestServer;
  let firstAdmin: CvmClient;
  let secondAdmin: CvmClient;

  before(async () => {
    [first, second] = await Promise.all([startTestServer(), startTestServer()]);
    [firstAdmin, secondAdmin] = await Promise.all([first.firstAdmin(), second.firstAdmin()]);
  });

  after(async () => {
    for (const [server, admin] of [
      [first, firstAdmin],
      [second, secondAdmin],
    ] as const) {
      for (const environment of (await admin?.listEnvironments().catch(() => undefined))?.items ?? []) {
        await admin.deleteEnvironment(environment.id).catch(() => undefined);
      }
      await server?.close();
    }
  });

  test("each labels what it makes with its own id, and removes only its own orphans", async () => {
    const firstId = await installationId(first.server.store);
    const secondId = await installationId(second.server.store);
    assert.notEqual(firstId, secondId, "two stores, two installations");

    const mine = await firstAdmin.createEnvironment({
      name: "kept",
      image: image as string,
      cpu: 0.5,
      memoryGiB: 0.25,
    });
    assert.equal(await follow(firstAdmin, "kept"), "running");
    const theirs = await secondAdmin.createEnvironment({
      name: "other",
      image: image as string,
      cpu: 0.5,
      memoryGiB: 0.25,
    });
    assert.equal(await follow(secondAdmin, "other"), "running");

    const provider = await openProvider(first);
    const [workload] = (await provider.listWorkloads()).filter((w) => w.environmentId === mine.id);
    await provider.close();
    assert.ok(workload, "the first installation lists its own workload");
    assert.equal((await labelsOf("container", workload.ref))["dev.cvm.installation"], firstId);
    assert.equal((await labelsOf("volume", `cvm-home-${mine.id}`))["dev.cvm.installation"], firstId);

    const report = await secondAdmin.reconcile(true);
    assert.deepEqual(report.orphans, [], "the first's workload is no orphan of the second's");
    assert.deepEqual(report.vanished, []);
    assert.equal((await firstAdmin.environment("kept")).state, "running", "and it keeps running");
    await run("docker", ["volume", "inspect", `cvm-home-${mine.id}`]);

    // A workload of the first's that its store no longer knows is the first's orphan, and only the first's.
    await first.server.store.environments.remove(mine.id);
    assert.deepEqual((await secondAdmin.reconcile(true)).orphans, []);
    const orphaned = await firstAdmin.reconcile(true);
    assert.deepEqual(
      orphaned.orphans.map((o) => [o.environmentId, o.removed]),
      [[mine.id, true]],
    );
    await assert.rejects(run("docker", ["volume", "inspect", `cvm-home-${mine.id}`]), "its home went with it");
    assert.equal((await secondAdmin.environment(theirs.id)).state, "running", "the second's is untouched");
  });
});
