/**
 * Warm pools on the real service and a real SQLite store, with the fake
 * provider's pool: filling to the count an admin sets, a CVM create that fits
 * claiming a member (and the pool refilling), the cold path and its reason in
 * the build log, draining on shrink, removal, a changed image and a failed
 * claim, members that reconcile never takes for orphans, and a member an
 * environment took before a restart left to that environment.
 */

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { PoolsStatus } from "../api/contract.js";
import type { Environment } from "../core/environment.js";
import { poolKey, type WarmPool } from "../core/warm-pool.js";
import * as fixtures from "../testing/fixtures.js";
import { startTestService, type TestService } from "../testing/service.js";

const pool = fixtures.warmPool;
const { image } = pool();

async function until<T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const found = await probe();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`waited 5 s for ${what}`);
    await sleep(5);
  }
}

describe("warm pools", () => {
  let t: TestService;
  beforeEach(async () => {
    t = await startTestService({ cvmEnabled: true });
  });
  afterEach(() => t.close());

  const status = (): Promise<PoolsStatus> => (t.service.pools as NonNullable<typeof t.service.pools>).status();
  const setPools = (pools: WarmPool[]) => t.settings.update(t.admin, { pools });
  const readyIn = (of: WarmPool, count: number) =>
    until(`${count} ready in ${poolKey(of)}`, async () => {
      const now = await status();
      const found = now.pools.find((p) => p.key === poolKey(of));
      return found && found.ready === count && found.filling === 0 ? now : undefined;
    });
  /** A CVM of the pool's image and size, less what the test changes. */
  const createCvm = (name: string, overrides: Record<string, unknown> = {}) =>
    t.service.create(t.member, { name, image, cvm: true, cpu: 2, memoryGiB: 4, diskGiB: 20, ...overrides });
  const logOf = async (environment: Environment) =>
    (await t.store.builds.logs(environment.buildId as string)).map((line) => line.text);
  const built = async (environment: Environment) => {
    const build = await t.finished(environment.buildId as string);
    assert.equal(build.outcome, "running", (await logOf(environment)).join("\n"));
    return (await t.store.environments.get(environment.id)) as Environment;
  };

  test("a pool fills to its count; a CVM that fits claims a member, which the pool replaces", async () => {
    await setPools([pool()]);
    const before = await readyIn(pool(), 2);
    assert.deepEqual(before.held, { cvms: 2, cpu: 4, memoryGiB: 8, diskGiB: 40 });
    const members = before.members.map((m) => m.id);

    const created = await createCvm("dev", { cpu: 1, memoryGiB: 2 });
    assert.ok(members.includes(created.id), "the environment takes the member's id");
    const running = await built(created);
    assert.deepEqual(
      running.timeline.map((c) => c.state),
      ["queued", "starting", "running"],
    );
    assert.deepEqual([running.name, running.ownerId, running.cpu, running.memoryGiB], ["dev", t.member.id, 1, 2]);
    const log = await logOf(created);
    assert.ok(
      log.some((line) => line.startsWith(`pool: claiming a warm CVM of ${poolKey(pool())}`)),
      log.join("\n"),
    );
    assert.deepEqual(
      t.provider.calls.filter((c) => c.environmentId === created.id).map((c) => c.method),
      ["fill", "build", "claim"],
      "the member was built when the pool filled, and claimed; the environment had no build of its own",
    );

    const after = await readyIn(pool(), 2);
    assert.ok(!after.members.some((m) => m.id === created.id), "the claimed member left the pool");
    assert.equal(after.members.filter((m) => !members.includes(m.id)).length, 1, "one new member replaced it");
  });

  test("no pool of the image, none of its size, none ready: the cold path, and the build log says why", async () => {
    await setPools([pool({ count: 1 })]);
    await readyIn(pool(), 1);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ image: "debian:12" }, /^pool: no warm pool for debian:12; building cold$/],
      [{ diskGiB: 10 }, /^pool: no warm pool of .* fits 2 CPU, 4 GiB, disk 10 GiB \(its pools: .*\); building cold$/],
      [{ cpu: 4 }, /^pool: no warm pool of .* fits 4 CPU/],
    ];
    for (const [i, [overrides, expected]] of cases.entries()) {
      const created = await createCvm(`cold${i}`, overrides);
      const running = await built(created);
      assert.deepEqual(running.timeline.map((c) => c.state).slice(0, 3), ["queued", "pulling", "creating"]);
      assert.ok(
        (await logOf(created)).some((line) => expected.test(line)),
        (await logOf(created)).join("\n"),
      );
    }
    // The one ready member is taken; the next create finds none ready.
    t.provider.script(image, { stepMs: 200 });
    const first = await createCvm("warm");
    const second = await createCvm("late");
    await built(first);
    await built(second);
    assert.ok((await logOf(first)).some((line) => line.startsWith("pool: claiming")));
    assert.ok(
      (await logOf(second)).some((line) =>
        /^pool: the warm pool .* has no ready CVM( \(1 being built\))?; building cold$/.test(line),
      ),
      (await logOf(second)).join("\n"),
    );
  });

  test("members built under other LXCFS or device settings are not claimed, and are drained and rebuilt", async () => {
    await setPools([pool({ count: 1 })]);
    const before = await readyIn(pool(), 1);
    assert.deepEqual(before.members[0].devices, { lxcfs: true, fuseDevice: true, tunDevice: true });
    const pools = t.service.pools as NonNullable<typeof t.service.pools>;
    const now = await t.settings.get();
    const spec = { name: "dev", image, cvm: true, cpu: 2, memoryGiB: 4, diskGiB: 20 };
    const reservation = pools.reserve(spec, { ...now, lxcfs: false, fuseDevice: false });
    assert.deepEqual(reservation, {
      miss: `the warm pool ${poolKey(pool())} holds only CVMs built under other settings (the Infrastructure settings changed since it was built: LXCFS is now off, /dev/fuse is now off)`,
    });
    const held = pools.reserve(spec, now);
    assert.ok("member" in held, "under the settings it was built under it is claimed");
    pools.cancel(held);

    await t.settings.update(t.admin, { tunDevice: false });
    const after = await until("the member rebuilt under the new settings", async () => {
      const seen = await status();
      return seen.members.length === 1 &&
        seen.members[0].state === "ready" &&
        seen.members[0].devices?.tunDevice === false
        ? seen
        : undefined;
    });
    assert.notEqual(after.members[0].id, before.members[0].id);
    assert.ok(t.provider.calls.some((c) => c.method === "drain" && c.environmentId === before.members[0].id));
  });

  test("a standard environment never takes a pool's member", async () => {
    await setPools([pool({ count: 1 })]);
    await readyIn(pool(), 1);
    const created = await createCvm("plain", { cvm: false });
    await built(created);
    assert.ok(!(await logOf(created)).some((line) => line.startsWith("pool:")));
    assert.equal((await status()).pools[0].ready, 1);
  });

  test("a pool shrunk or removed, and CVMs turned off, drain their members", async () => {
    await setPools([pool({ count: 3 })]);
    const full = await readyIn(pool(), 3);
    await setPools([pool({ count: 1 })]);
    const shrunk = await readyIn(pool(), 1);
    assert.equal(t.provider.calls.filter((c) => c.method === "drain").length, 2);
    assert.ok(full.members.some((m) => m.id === shrunk.members[0].id));

    await setPools([pool({ count: 1, diskGiB: 10 })]);
    await readyIn(pool({ diskGiB: 10 }), 1);
    const moved = await status();
    assert.deepEqual(
      moved.members.map((m) => m.pool),
      [poolKey(pool({ diskGiB: 10 }))],
      "the old size's member is drained",
    );

    await t.settings.update(t.admin, { cvmEnabled: false });
    await until("every member drained", async () => (await status()).members.length === 0);
    assert.deepEqual(await t.provider.pool?.members(), []);
  });

  test("an image changed in its registry: the claim goes cold, and the pool's members are rebuilt", async () => {
    await setPools([pool()]);
    const before = await readyIn(pool(), 2);
    t.provider.imageVersions.set(image, "sha256:2");
    const created = await createCvm("dev");
    await built(created);
    const log = await logOf(created);
    assert.ok(
      log.includes(`pool: ${image} changed in its registry since the warm CVM was built; building cold`),
      log.join("\n"),
    );
    assert.deepEqual(
      t.provider.calls.filter((c) => c.environmentId === created.id).map((c) => c.method),
      ["fill", "build", "claim", "drain", "build"],
      "claimed while the registry was asked, then drained and built cold",
    );
    const after = await until("the stale members rebuilt", async () => {
      const now = await status();
      return now.members.length === 2 && now.members.every((m) => m.state === "ready" && m.imageVersion === "sha256:2")
        ? now
        : undefined;
    });
    assert.ok(!after.members.some((m) => before.members.some((b) => b.id === m.id)));
  });

  test("a claim that fails drains the member and builds cold", async () => {
    await setPools([pool({ count: 1 })]);
    await readyIn(pool(), 1);
    t.provider.script("dev", { claimFails: "the CVM's systemd did not answer" });
    const created = await createCvm("dev");
    await built(created);
    const log = await logOf(created);
    assert.ok(log.includes("pool: the claim failed (the CVM's systemd did not answer); building cold"), log.join("\n"));
    const calls = t.provider.calls.filter((c) => c.environmentId === created.id).map((c) => c.method);
    assert.deepEqual(calls, ["fill", "build", "claim", "drain", "build"]);
  });

  test("a create refused (the name is taken) gives its reserved member back", async () => {
    await setPools([pool({ count: 1 })]);
    await readyIn(pool(), 1);
    await built(await t.service.create(t.member, { name: "dev", image: "debian:12" }));
    await assert.rejects(createCvm("dev"));
    const again = await createCvm("dev2");
    await built(again);
    assert.ok(
      (await logOf(again)).some((line) => line.startsWith("pool: claiming")),
      (await logOf(again)).join("\n"),
    );
  });

  test("members are no orphans to reconcile, and a restarted server adopts them", async () => {
    await setPools([pool()]);
    const before = await readyIn(pool(), 2);
    assert.deepEqual((await t.service.reconcile({ removeOrphans: true })).orphans, []);
    await t.restart();
    const adopted = await readyIn(pool(), 2);
    assert.deepEqual(adopted.members.map((m) => m.id).sort(), before.members.map((m) => m.id).sort());
    assert.equal(t.provider.calls.filter((c) => c.method === "fill").length, 2, "nothing was rebuilt");
  });

  test("a member an environment took before the server stopped is that environment's after a restart", async () => {
    await setPools([pool({ count: 1 })]);
    const [member] = (await readyIn(pool(), 1)).members;
    // What a create leaves when its server stops between the reservation and the claim.
    await t.store.environments.create(
      fixtures.environment({ id: member.id, name: "dev", ownerId: t.member.id, ownerEmail: t.member.email }),
    );
    await t.restart();
    const refilled = await until("a new member", async () => {
      const now = await status();
      return now.members.length === 1 && now.members[0].id !== member.id && now.members[0].state === "ready"
        ? now
        : undefined;
    });
    assert.ok(!refilled.members.some((m) => m.id === member.id), "forgotten by the pool");
    assert.ok(
      !t.provider.calls.some((c) => c.method === "drain" && c.environmentId === member.id),
      "its workload was not drained: the environment's resumed build owns it",
    );
  });
});
