/**
 * Per-member quotas on the real service and a real SQLite store with the
 * fake provider: environments, CPUs and memory held by running or building
 * environments; a refusal is a 409 naming the quota, stopped environments
 * hold nothing, and site admins are not held to quotas.
 */

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { CvmError } from "../../core/errors.js";
import type { UserQuotas } from "../../core/settings.js";
import * as fixtures from "../../testing/fixtures.js";
import { startTestService, type TestService } from "../../testing/service.js";

/** Asserts a 409 that names the quota in its message and on its field. */
async function refusedBy(quota: string, work: Promise<unknown>): Promise<void> {
  await assert.rejects(work, (error: unknown) => {
    assert.ok(error instanceof CvmError, String(error));
    assert.equal(error.status, 409);
    assert.match(error.message, new RegExp(`^Quota reached: .*\\(quota ${quota}\\)$`));
    assert.equal(error.validations?.[0].field, `quotas.${quota}`);
    return true;
  });
}

describe("quotas", () => {
  let t: TestService;
  afterEach(() => t.close());

  async function withQuotas(quotas: Partial<UserQuotas>) {
    t = await startTestService();
    await t.store.settings.putInfrastructure(fixtures.settings({ quotas }));
  }
  const create = (name: string, size = { cpu: 1, memoryGiB: 1 }) =>
    t.service.create(t.member, { name, image: "debian:12", ...size });

  test("a member may have as many environments as the quota says, whatever their state", async () => {
    await withQuotas({ environments: 2, runningCpu: 0, runningMemoryGiB: 0 });
    await t.finished((await create("one")).buildId as string);
    await t.finished((await create("two")).buildId as string);
    await t.service.stop(t.member, "two");
    await refusedBy("environments", create("three"));
    await t.service.remove(t.member, "two", { keepHome: false });
    await t.finished((await create("three")).buildId as string);
  });

  test("CPUs and memory count while environments run or build; stopping one frees its share", async () => {
    await withQuotas({ environments: 0, runningCpu: 3, runningMemoryGiB: 5 });
    await t.finished((await create("a", { cpu: 2, memoryGiB: 2 })).buildId as string);
    await refusedBy("runningCpu", create("b", { cpu: 2, memoryGiB: 1 }));
    await refusedBy("runningMemoryGiB", create("b", { cpu: 1, memoryGiB: 4 }));
    await t.finished((await create("b", { cpu: 1, memoryGiB: 3 })).buildId as string);
    await t.service.stop(t.member, "a");
    await t.finished((await create("c", { cpu: 2, memoryGiB: 2 })).buildId as string);
    await refusedBy("runningCpu", t.service.start(t.member, "a"));
    await t.service.stop(t.member, "c");
    await t.finished((await t.service.start(t.member, "a")).buildId as string);
    await t.finished((await t.service.rebuild(t.member, "a", {})).buildId as string);
  });

  test("concurrent creates cannot both take the last of a quota", async () => {
    await withQuotas({ environments: 1 });
    const results = await Promise.allSettled([create("x"), create("y"), create("z")]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
  });

  test("site admins set quotas and are not held to them", async () => {
    await withQuotas({ environments: 1, runningCpu: 1 });
    for (const name of ["p", "q", "r"]) {
      await t.service.create(t.admin, { name, image: "debian:12", cpu: 2, memoryGiB: 1 });
    }
    assert.equal((await t.service.list(t.admin, { limit: 100 })).items.length, 3);
  });

  test("0 is no quota", async () => {
    await withQuotas({ environments: 0, runningCpu: 0, runningMemoryGiB: 0 });
    for (let i = 0; i < 12; i++) await create(`e${i}`, { cpu: 4, memoryGiB: 8 });
    assert.equal((await t.service.list(t.member, { limit: 100 })).items.length, 12);
  });
});
