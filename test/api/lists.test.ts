/**
 * Lists as the API serves them, a page at a time: environments newest first
 * and users oldest first, each page at most `limit` items with the cursor of
 * the next, filters applied before paging, and the same on both stores. An
 * admin's list of hundreds of environments is many small answers, not one.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type ApiError, collectPages } from "../../src/client/index.js";
import type { Environment } from "../../src/core/environment.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { refused } from "../harness/refusals.js";
import { type SignedIn, startTestServer, storeKinds, type TestServer } from "../harness/server.js";

const fields = (error: ApiError) => (error.body.validations ?? []).map((v) => v.field);
const t0 = Date.parse("2026-03-01T00:00:00.000Z");

/** An environment written straight into the store, four to a second: these tests are about listing, not building. */
const stored = (owner: fixtures.Owner, i: number): Environment =>
  fixtures.environment({
    owner,
    name: `box-${i}`,
    cvm: i % 2 === 0,
    state: i % 3 === 0 ? "running" : "stopped",
    createdAt: new Date(t0 + Math.floor(i / 4) * 1000).toISOString(),
  });

const newestFirst = (list: Environment[]) =>
  [...list]
    .sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1))
    .map((e) => e.id);

for (const kind of storeKinds) {
  describe(`paged lists (${kind})`, () => {
    let t: TestServer;
    let admin: SignedIn;
    let member: SignedIn;
    const seeded: Environment[] = [];

    before(async () => {
      t = await startTestServer(kind);
      admin = await t.firstAdmin();
      member = await t.userWithRole(admin, "member", "member@example.com");
      // 250 environments, four to a second, 50 of them the member's.
      for (let i = 0; i < 250; i++) {
        const owner = i % 5 === 0 ? member.user : admin.user;
        seeded.push(await t.server.store.environments.create(stored(owner, i)));
      }
    });
    after(() => t?.close());

    test("an admin's list of everyone's is a page of 100 with a cursor; walking it gives each once, newest first", async () => {
      const first = await admin.listEnvironments({ owner: "all" });
      assert.equal(first.items.length, 100);
      assert.ok(first.nextCursor);
      // A list leaves timelines behind (they grow with every start and stop); the environment itself has it.
      assert.equal("timeline" in first.items[0], false);
      assert.ok(Array.isArray((await admin.environment(first.items[0].id)).timeline));
      const sizes: number[] = [];
      const ids: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await admin.listEnvironments({ owner: "all", limit: 60, cursor });
        sizes.push(page.items.length);
        ids.push(...page.items.map((e) => e.id));
        cursor = page.nextCursor;
      } while (cursor);
      assert.deepEqual(sizes, [60, 60, 60, 60, 10]);
      assert.deepEqual(ids, newestFirst(seeded));
      const everything = await collectPages((page) => admin.listEnvironments({ owner: "all", ...page }));
      assert.deepEqual(
        everything.map((e) => e.id),
        ids,
      );
    });

    test("filters apply in the store before paging: owner, state, kind and part of the name", async () => {
      const mine = await collectPages((page) => member.listEnvironments(page), { pageSize: 7 });
      assert.deepEqual(
        mine.map((e) => e.id),
        newestFirst(seeded.filter((e) => e.ownerId === member.user.id)),
      );
      const running = await admin.listEnvironments({ owner: "all", state: "running", kind: "cvm", limit: 500 });
      assert.deepEqual(
        running.items.map((e) => e.id),
        newestFirst(seeded.filter((e) => e.state === "running" && e.cvm)),
      );
      assert.equal(running.nextCursor, undefined);
      const named = await admin.listEnvironments({ owner: "all", q: "x-24" });
      assert.deepEqual(named.items.map((e) => e.name).sort(), [
        "box-24",
        "box-240",
        "box-241",
        "box-242",
        "box-243",
        "box-244",
        "box-245",
        "box-246",
        "box-247",
        "box-248",
        "box-249",
      ]);
      const theirs = await admin.listEnvironments({ owner: member.user.id, limit: 5 });
      assert.equal(theirs.items.length, 5);
      assert.ok(theirs.items.every((e) => e.ownerId === member.user.id));
    });

    test("a bad limit or cursor is a 400 naming it; a member listing everyone's is a 403", async () => {
      for (const limit of [0, 501, 2.5]) {
        assert.deepEqual(fields(await refused(admin.listEnvironments({ owner: "all", limit }), 400)), ["limit"]);
      }
      assert.deepEqual(fields(await refused(admin.listEnvironments({ cursor: "not-ours" }), 400)), ["cursor"]);
      await refused(member.listEnvironments({ owner: "all" }), 403);
    });

    test("users: oldest first a page at a time, one found by email; members may not list them", async () => {
      for (let i = 0; i < 5; i++)
        await admin.createUser({ email: `u${i}@example.com`, password: "password123", role: "member" });
      const first = await admin.listUsers({ limit: 3 });
      assert.equal(first.items.length, 3);
      assert.equal(first.items[0].email, "admin@example.com");
      assert.ok(first.nextCursor);
      const all = await collectPages((page) => admin.listUsers(page), { pageSize: 3 });
      assert.equal(all.length, 7);
      assert.equal(new Set(all.map((u) => u.id)).size, 7);
      const found = await admin.listUsers({ email: "U3@Example.COM" });
      assert.deepEqual(
        found.items.map((u) => u.email),
        ["u3@example.com"],
      );
      await refused(member.listUsers(), 403);
      assert.deepEqual(fields(await refused(admin.listUsers({ cursor: "x" }), 400)), ["cursor"]);
    });

    test("the OpenAPI document names limit and cursor on every paged list, and nextCursor in its answer", async () => {
      const doc = (await (await fetch(`${t.url}/api/v1/openapi.json`)).json()) as {
        paths: Record<string, { get: { parameters: { name: string }[] } }>;
      };
      for (const path of ["/environments", "/users", "/audit"]) {
        const names = doc.paths[`/api/v1${path}`].get.parameters.map((p) => p.name);
        assert.ok(names.includes("limit") && names.includes("cursor"), `${path}: ${names.join(", ")}`);
      }
      assert.match(JSON.stringify(doc.paths["/api/v1/environments"]), /nextCursor/);
    });
  });
}
