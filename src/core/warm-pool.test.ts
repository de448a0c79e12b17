/** The warm pool's rules: fitting a request, checking an admin's pools, and the plan that fills and drains. */

import assert from "node:assert/strict";
import { test } from "node:test";
import * as fixtures from "../testing/fixtures.js";
import type { EnvironmentSpec } from "./environment.js";
import { defaultSettings } from "./settings.js";
import {
  capacityProblems,
  type MemberSettings,
  memberEnvironment,
  type PoolMember,
  type PoolStep,
  planPools,
  poolKey,
  poolProblems,
  poolsFor,
  type WarmPool,
  withPool,
} from "./warm-pool.js";

const image = "registry.example.com/cvm/dev:1";
const pool = fixtures.warmPool;
const member = fixtures.poolMember;
const spec = (overrides: Partial<EnvironmentSpec> = {}): EnvironmentSpec => ({
  name: "dev",
  image,
  cvm: true,
  cpu: 2,
  memoryGiB: 4,
  diskGiB: 20,
  ...overrides,
});

test("a request fits a pool of its image and disk with at least its CPUs and memory, the closest first", () => {
  const big = pool({ cpu: 8, memoryGiB: 16 });
  const small = pool({ cpu: 2, memoryGiB: 4 });
  assert.deepEqual(poolsFor(spec({ cpu: 1, memoryGiB: 2 }), [big, small]), { pools: [small, big] });
  assert.deepEqual(poolsFor(spec({ cpu: 4 }), [big, small]), { pools: [big] });
});

test("a request no pool fits says why: no pool of the image, or none of its size", () => {
  assert.deepEqual(poolsFor(spec({ image: "debian:12" }), [pool()]), { miss: "no warm pool for debian:12" });
  assert.deepEqual(poolsFor(spec(), [pool({ count: 0 })]), { miss: `no warm pool for ${image}` });
  assert.deepEqual(poolsFor(spec({ diskGiB: 10 }), [pool()]), {
    miss: `no warm pool of ${image} fits 2 CPU, 4 GiB, disk 10 GiB (its pools: ${poolKey(pool())})`,
  });
  assert.match((poolsFor(spec({ memoryGiB: 8 }), [pool()]) as { miss: string }).miss, /fits 2 CPU, 8 GiB/);
});

test("an admin's pools are checked field by field against the environment limits", () => {
  const limits = defaultSettings.limits;
  assert.deepEqual(poolProblems([pool()], limits), []);
  assert.deepEqual(poolProblems("all of them", limits), [{ field: "pools", detail: "must be a list of pools" }]);
  assert.deepEqual(
    poolProblems(
      [pool({ image: "Not An Image", cpu: 99, count: 2.5 }), pool(), pool({ memoryGiB: "lots" as never })],
      limits,
    ),
    [
      {
        field: "pools.0.image",
        detail:
          "has an invalid repository name (lowercase letters, digits and separators '.', '_', '__', '-', in '/'-separated parts)",
      },
      { field: "pools.0.cpu", detail: "must be between 0.25 and 16 CPUs (the environment limits)" },
      { field: "pools.0.count", detail: "must be a whole number from 0 to 20" },
      { field: "pools.2.memoryGiB", detail: "must be a number" },
    ],
  );
  assert.deepEqual(poolProblems([pool(), pool({ count: 5 })], limits), [
    { field: "pools.1.image", detail: "the same image and size is listed twice" },
  ]);
  assert.deepEqual(poolProblems([pool({ count: 21 })], limits), [
    { field: "pools.0.count", detail: "must be a whole number from 0 to 20" },
  ]);
});

test("a pool set again replaces the one of its image and size; a count of 0 takes it out", () => {
  const other = pool({ diskGiB: 10 });
  assert.deepEqual(withPool([pool(), other], pool({ count: 5 })), [other, pool({ count: 5 })]);
  assert.deepEqual(withPool([pool(), other], pool({ count: 0 })), [other]);
});

const plan = (
  pools: WarmPool[],
  members: PoolMember[],
  extra: { settings?: Partial<MemberSettings>; versions?: [string, string][] } = {},
): PoolStep[] =>
  planPools({
    pools,
    members,
    settings: { runtime: "auto", lxcfs: true, fuseDevice: true, tunDevice: true, ...extra.settings },
    imageVersions: new Map(extra.versions ?? []),
  });

test("a plan fills each pool to its count and leaves a full one alone", () => {
  const p = pool({ count: 3 });
  assert.deepEqual(plan([p], [member(p)]), [{ fill: p }, { fill: p }]);
  const full = [member(p), member(p, { state: "filling" }), member(p)];
  assert.deepEqual(plan([p], full), []);
});

test("a plan drains what no pool wants: failed, of a removed pool, another runtime, a replaced image", () => {
  const p = pool({ count: 1 });
  const gone = pool({ diskGiB: 50 });
  const failed = member(p, { state: "failed", reason: "disk full" });
  const orphaned = member(gone);
  const otherRuntime = member(p, { runtimeSetting: "userns" });
  const stale = member(p, { imageVersion: "sha256:old" });
  const steps = plan([p], [failed, orphaned, otherRuntime, stale], { versions: [[image, "sha256:new"]] });
  assert.deepEqual(steps, [
    { drain: failed, why: "its build failed: disk full" },
    { drain: orphaned, why: "its pool was removed" },
    { drain: otherRuntime, why: "the isolation runtime setting is now auto" },
    { drain: stale, why: `${image} changed in its registry` },
    { fill: p },
  ]);
  // A version unknown (no registry answered) or the same keeps the member.
  assert.deepEqual(plan([p], [stale]), []);
  assert.deepEqual(plan([p], [stale], { versions: [[image, "sha256:old"]] }), []);
});

test("a plan drains a member built under other LXCFS or device settings, or before they were recorded", () => {
  const p = pool({ count: 1 });
  const kept = member(p);
  const unrecorded = member(p, { devices: undefined });
  assert.deepEqual(plan([p], [kept, unrecorded]), [
    { drain: unrecorded, why: "it was built before its LXCFS and device settings were recorded" },
  ]);
  assert.deepEqual(plan([p], [kept], { settings: { lxcfs: false, tunDevice: false } }), [
    {
      drain: kept,
      why: "the Infrastructure settings changed since it was built: LXCFS is now off, /dev/net/tun is now off",
    },
    { fill: p },
  ]);
  assert.deepEqual(plan([p], [kept], { settings: { fuseDevice: false } }), [
    { drain: kept, why: "the Infrastructure settings changed since it was built: /dev/fuse is now off" },
    { fill: p },
  ]);
});

test("a shrunk pool drains its newest members, those still filling first", () => {
  const p = pool({ count: 1 });
  const oldest = member(p);
  const newer = member(p);
  const filling = member(p, { state: "filling" });
  assert.deepEqual(plan([p], [oldest, newer, filling]), [
    { drain: filling, why: "its pool shrank" },
    { drain: newer, why: "its pool shrank" },
  ]);
  assert.deepEqual(plan([], [oldest]), [{ drain: oldest, why: "its pool was removed" }]);
});

test("a member is built as an environment of its own id and name, of its pool's image and size", () => {
  const m = member(pool(), { id: "env_0123456789abcdef0123" });
  const environment = memberEnvironment(m, "userns");
  assert.equal(environment.id, m.id);
  assert.equal(environment.name, "pool-cdef0123");
  assert.deepEqual(
    [environment.image, environment.cvm, environment.cpu, environment.memoryGiB, environment.diskGiB],
    [image, true, 2, 4, 20],
  );
});

test("pooled CVMs count against capacity: size times count, in all, up to the machine's and no more", () => {
  const machine = { cpu: 8, memoryGiB: 16 };
  assert.deepEqual(capacityProblems([pool({ cpu: 2, memoryGiB: 4, count: 4 })], machine), [], "exactly the machine");
  assert.deepEqual(capacityProblems([pool({ cpu: 2, memoryGiB: 4, count: 0 })], machine), []);
  assert.deepEqual(
    capacityProblems(
      [pool({ cpu: 2, memoryGiB: 1, count: 3 }), pool({ cpu: 1.5, memoryGiB: 6, diskGiB: 50, count: 2 })],
      machine,
    ),
    [{ field: "pools", detail: "the warm pools would hold 9 CPUs in all, more than the engine's machine has (8)" }],
  );
  assert.match(
    capacityProblems([pool({ cpu: 1, memoryGiB: 6.5, count: 3 })], { cpu: 8, memoryGiB: 15.6 })[0]?.detail ?? "",
    /hold 19\.5 GiB of memory in all, more than the engine's machine has \(15\.6 GiB\)/,
  );
});
