/**
 * Warm pools over HTTP, as Manage > Admin > Infrastructure and `cvm admin
 * pool` use them, with the fake provider (what a claim does inside a CVM is
 * test/cvm/warm-pool.test.ts): who may see and set them, a pool's defaults and
 * validation, the audit trail, a member's create claiming and the build log
 * saying so, and a pool removed. Every answer is checked against the OpenAPI
 * document (CVM_CHECK_RESPONSES).
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { PoolsStatus } from "../../src/api/contract.js";
import { ApiError, type CvmClient } from "../../src/client/index.js";
import { createFakeProvider } from "../../src/providers/fake/index.js";
import { startTestServer, type TestServer } from "../harness/server.js";

const image = "registry.example.com/cvm/dev:1";

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`waited 10 s for ${what}`);
    await sleep(20);
  }
}

describe("warm pools over HTTP", () => {
  let t: TestServer;
  let provider: ReturnType<typeof createFakeProvider>;
  let admin: CvmClient;
  let member: CvmClient;
  before(async () => {
    provider = createFakeProvider();
    // A machine of 8 CPUs and 16 GiB (the fake's own is larger): the pools count against it.
    provider.capacity = { cpu: 8, memoryGiB: 16 };
    t = await startTestServer({ provider });
    admin = await t.firstAdmin();
    member = await t.userWithRole(admin, "member");
    await admin.updateInfrastructure({ cvmEnabled: true, force: true });
  });
  after(() => t?.close());

  const ready = (status: PoolsStatus) => status.pools.every((p) => p.ready === p.count && p.filling === 0);

  test("a member may neither see nor set the pools", async () => {
    for (const call of [() => member.pools(), () => member.setPool({ image, count: 1 })]) {
      const error = await call().then(
        () => assert.fail("expected a 403"),
        (e: unknown) => e as ApiError,
      );
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 403);
    }
  });

  test("a pool set with a create's default size fills, is audited, and is refused field by field when wrong", async () => {
    const set = await admin.setPool({ image, count: 2 });
    assert.equal(set.supported, true);
    assert.deepEqual(
      set.pools.map(({ image, cpu, memoryGiB, diskGiB, count }) => ({ image, cpu, memoryGiB, diskGiB, count })),
      [{ image, cpu: 2, memoryGiB: 4, diskGiB: 20, count: 2 }],
    );
    await until("the pool ready", async () => ready(await admin.pools()));
    const status = await admin.pools();
    assert.equal(status.members.length, 2);
    assert.deepEqual(status.held, { cvms: 2, cpu: 4, memoryGiB: 8, diskGiB: 40 });
    assert.deepEqual((await admin.infrastructure()).pools, [{ image, cpu: 2, memoryGiB: 4, diskGiB: 20, count: 2 }]);

    const audit = await admin.audit({ action: "settings.update" });
    assert.ok(
      audit.items.some((entry) => JSON.stringify(entry.after).includes(image)),
      "the pool change is in the audit log",
    );

    const refused = await admin.setPool({ image: "Not An Image", cpu: 999, count: 100 }).then(
      () => assert.fail("expected a 400"),
      (e: unknown) => e as ApiError,
    );
    assert.equal(refused.status, 400);
    assert.deepEqual((refused.body.validations ?? []).map((v) => v.field.replace(/^pools\.\d+\./, "")).sort(), [
      "count",
      "cpu",
      "image",
    ]);
  });

  test("pooled CVMs count against capacity: pools holding more than the engine's machine are refused, naming the field", async () => {
    const status = await admin.pools();
    assert.deepEqual(status.capacity, { cpu: 8, memoryGiB: 16 }, "the admin's view shows the machine's capacity");
    const cpus = await admin.setPool({ image, cpu: 2, memoryGiB: 1, count: 5 }).then(
      () => assert.fail("expected a 400"),
      (e: unknown) => e as ApiError,
    );
    assert.equal(cpus.status, 400);
    assert.deepEqual(cpus.body.validations, [
      {
        field: "pools",
        detail: "the warm pools would hold 14 CPUs in all, more than the engine's machine has (8)",
      },
    ]);
    const memory = await admin.setPool({ image: `${image}-big`, cpu: 1, memoryGiB: 4, count: 3 }).then(
      () => assert.fail("expected a 400"),
      (e: unknown) => e as ApiError,
    );
    assert.equal(memory.status, 400);
    assert.match(memory.body.validations?.[0]?.detail ?? "", /hold 20 GiB of memory in all.*\(16 GiB\)/);
    assert.equal(memory.body.validations?.[0]?.field, "pools");
    assert.deepEqual(
      (await admin.infrastructure()).pools.map((p) => p.image),
      [image],
      "nothing refused was kept",
    );
  });

  test("a CVM create that fits claims a member, and its build log says so; a pool at 0 is removed", async () => {
    await admin.setPool({ image, count: 1, cpu: 2, memoryGiB: 4, diskGiB: 20 });
    await until("the pool ready", async () => ready(await admin.pools()));
    const before = (await admin.pools()).members.map((m) => m.id);
    const created = await member.createEnvironment({ name: "warm", image, cvm: true, cpu: 1, memoryGiB: 2 });
    assert.ok(before.includes(created.id), "the environment has the member's id");
    const lines: string[] = [];
    for await (const item of member.logs("warm", { follow: true })) {
      if ("text" in item) lines.push(item.text);
    }
    assert.ok(
      lines.some((line) => line.startsWith("pool: claiming a warm CVM of ")),
      lines.join("\n"),
    );
    assert.equal((await member.environment("warm")).state, "running");

    await admin.setPool({ image, count: 0, cpu: 2, memoryGiB: 4, diskGiB: 20 });
    await until("every member drained", async () => (await admin.pools()).members.length === 0);
    assert.deepEqual((await admin.pools()).pools, []);
  });
});
