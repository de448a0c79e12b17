/**
 * One suite, run against both back ends: SQLite in a temporary directory and
 * PostgreSQL on the test server (a fresh database per test, dropped after).
 * Without CVM_TEST_PG_URL the PostgreSQL half fails rather than skips.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { AuditEntry } from "../core/audit.js";
import type { Environment } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import { defaultSettings } from "../core/settings.js";
import type { Store } from "../core/store.js";
import type { User } from "../core/user.js";
import * as fixtures from "../testing/fixtures.js";
import type { Database } from "./database.js";
import { openStore, type StoreOptions } from "./index.js";
import { migrate, migrations } from "./migrations.js";
import { openPostgresDatabase } from "./postgres-database.js";
import { openSqliteDatabase, sqlitePath } from "./sqlite-database.js";
import { freshPostgresUrl } from "./testing.js";

interface Fresh {
  options: StoreOptions;
  /** A raw connection to the same database, to look behind the port. */
  database(): Database;
  drop(): Promise<void>;
}

const backends: { name: "sqlite" | "postgres"; fresh(): Promise<Fresh> }[] = [
  {
    name: "sqlite",
    async fresh() {
      const dataDir = join(mkdtempSync(join(tmpdir(), "cvm-store-test-")), "data");
      return {
        options: { dataDir },
        database: () => openSqliteDatabase(dataDir),
        drop: async () => rmSync(join(dataDir, ".."), { recursive: true, force: true }),
      };
    },
  },
  {
    name: "postgres",
    async fresh() {
      const { url, drop } = await freshPostgresUrl();
      return {
        options: { dataDir: "/nonexistent", postgresUrl: url },
        database: () => openPostgresDatabase(url),
        drop,
      };
    },
  },
];

const t0 = Date.parse("2026-01-01T00:00:00.000Z");
const minutes = (n: number) => new Date(t0 + n * 60_000).toISOString();

function newUser(email: string) {
  return fixtures.newUser({ email });
}

/** Sizes with fractions, so the columns' number types are tried; "" lets the store choose the id. */
function newEnvironment(ownerId: string, name: string, overrides: Partial<Environment> = {}): Environment {
  return fixtures.environment({
    id: "",
    ownerId,
    name,
    image: "127.0.0.1:5000/cvm/debian:12",
    cpu: 1.5,
    memoryGiB: 2,
    diskGiB: 10,
    createdAt: minutes(0),
    ...overrides,
  });
}

async function rejectsWith(promise: Promise<unknown>, code: string, field: string): Promise<CvmError> {
  const error = await promise.then(
    () => assert.fail(`expected a ${code} on ${field}`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof CvmError, `expected a CvmError, got ${error}`);
  assert.equal(error.code, code);
  assert.deepEqual(
    error.validations?.map((v) => v.field),
    [field],
  );
  return error;
}

for (const backend of backends) {
  describe(`store on ${backend.name}`, () => {
    /** Runs `fn` with a store on a fresh database, then closes and drops it. */
    const withStore = async (fn: (store: Store, fresh: Fresh) => Promise<void>) => {
      const fresh = await backend.fresh();
      const store = await openStore(fresh.options);
      try {
        assert.equal(store.soleWriter, backend.name === "sqlite");
        await fn(store, fresh);
      } finally {
        await store.close();
        await fresh.drop();
      }
    };

    test("migrations: a second run applies nothing; replicas opening at once all succeed", async () => {
      const fresh = await backend.fresh();
      try {
        const db = fresh.database();
        try {
          assert.deepEqual(
            await migrate(db),
            migrations.map((m) => m.version),
          );
          assert.deepEqual(await migrate(db), []);
        } finally {
          await db.close();
        }
        const stores = await Promise.all(Array.from({ length: 5 }, () => openStore(fresh.options)));
        await Promise.all(stores.map((s) => s.close()));
        const check = fresh.database();
        try {
          const rows = await check.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
          assert.deepEqual(
            rows.map((r) => Number(r.version)),
            migrations.map((m) => m.version),
          );
        } finally {
          await check.close();
        }
      } finally {
        await fresh.drop();
      }
    });

    test("migrations: a store made by an older cvm gets only the newer steps, and keeps its data", async () => {
      const fresh = await backend.fresh();
      try {
        const db = fresh.database();
        try {
          assert.deepEqual(await migrate(db, migrations.slice(0, 1)), [1]);
          await db.query(
            "INSERT INTO users (id, email, name, role, active, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            ["usr_old", "old@example.com", "old", "site-admin", true, "h", minutes(0)],
          );
        } finally {
          await db.close();
        }
        const store = await openStore(fresh.options);
        try {
          assert.equal((await store.users.get("usr_old"))?.email, "old@example.com");
          const env = await store.environments.create(newEnvironment("usr_old", "dev"));
          assert.equal((await store.environments.get(env.id))?.name, "dev");
        } finally {
          await store.close();
          await store.close();
        }
      } finally {
        await fresh.drop();
      }
    });

    test("migrations: racing replicas on a fresh database all open it", async () => {
      const fresh = await backend.fresh();
      try {
        const stores = await Promise.all(Array.from({ length: 5 }, () => openStore(fresh.options)));
        const users = await Promise.all(stores.map((s, i) => s.users.create(newUser(`r${i}@example.com`))));
        assert.equal(new Set(users.map((u) => u.id)).size, 5);
        assert.equal(await stores[0].users.count(), 5);
        await Promise.all(stores.map((s) => s.close()));
      } finally {
        await fresh.drop();
      }
    });

    test("users: ids are prefixed, emails unique regardless of case, updates apply", () =>
      withStore(async (store) => {
        const ada = await store.users.create({ ...newUser("Ada@Example.com"), role: "site-admin" });
        assert.match(ada.id, /^usr_[0-9a-f]{20}$/);
        assert.deepEqual(ada, { ...ada, email: "Ada@Example.com", role: "site-admin", active: true });
        await rejectsWith(store.users.create(newUser("ada@example.com")), "CONFLICT", "email");
        const found = await store.users.getByEmail("ADA@example.com");
        assert.equal(found?.id, ada.id);
        assert.equal(found?.passwordHash, "hash-of-Ada@Example.com");
        assert.equal("passwordHash" in ((await store.users.get(ada.id)) ?? {}), false);
        const updated = await store.users.update(ada.id, { role: "member", active: false, name: "Ada L." });
        assert.deepEqual(updated, { ...ada, role: "member", active: false, name: "Ada L." });
        assert.deepEqual(await store.users.get(ada.id), updated);
        await assert.rejects(store.users.update("usr_missing", { name: "x" }), { code: "NOT_FOUND" });
        assert.equal(await store.users.get("usr_missing"), undefined);
        assert.deepEqual(
          (await store.users.page({}, { limit: 10 })).items.map((u) => u.id),
          [ada.id],
        );
      }));

    test("users: paged oldest first, found by email in any case, counted by role and activity", () =>
      withStore(async (store) => {
        const users: User[] = [];
        for (let i = 0; i < 7; i++) {
          const role = i === 0 ? ("site-admin" as const) : ("member" as const);
          users.push(await store.users.create({ ...newUser(`u${i}@example.com`), role }));
        }
        // Users made in the same millisecond are in the order of their ids.
        const oldestFirst = [...users]
          .sort((x, y) => (x.createdAt === y.createdAt ? (x.id < y.id ? -1 : 1) : x.createdAt < y.createdAt ? -1 : 1))
          .map((u) => u.id);
        const created = users.map((u) => u.id);
        await store.users.update(created[6], { active: false });
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.users.page({}, { limit: 3, cursor });
          assert.ok(page.items.length <= 3);
          seen.push(...page.items.map((u) => u.id));
          cursor = page.nextCursor;
        } while (cursor);
        assert.deepEqual(seen, oldestFirst, "every user once, oldest first");
        assert.deepEqual(
          (await store.users.page({ email: "U3@EXAMPLE.com" }, { limit: 5 })).items.map((u) => u.id),
          [created[3]],
        );
        assert.equal(await store.users.count(), 7);
        assert.equal(await store.users.count({ role: "site-admin", active: true }), 1);
        assert.equal(await store.users.count({ role: "member", active: true }), 5);
        assert.equal(await store.users.count({ active: false }), 1);
        await rejectsWith(store.users.page({}, { limit: 3, cursor: "bm9wZQ" }), "BAD_REQUEST", "cursor");
      }));

    test("users: ten racing first-run requests create exactly one account", () =>
      withStore(async (store) => {
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            store.users.createFirst({ ...newUser(`first${i}@example.com`), role: "site-admin" }),
          ),
        );
        const winners = results.filter((u) => u !== undefined);
        assert.equal(winners.length, 1);
        assert.equal(await store.users.count(), 1);
        assert.equal(await store.users.createFirst({ ...newUser("late@example.com"), role: "site-admin" }), undefined);
      }));

    test("tokens: found by secret hash, listed per user, touched and revoked once", () =>
      withStore(async (store) => {
        const user = await store.users.create(newUser("tok@example.com"));
        const token = await store.tokens.create({
          userId: user.id,
          kind: "api",
          name: "ci",
          secretHash: "h1",
          expiresAt: minutes(60),
        });
        assert.match(token.id, /^tok_/);
        assert.deepEqual(await store.tokens.findBySecretHash("h1"), token);
        assert.equal(await store.tokens.findBySecretHash("h2"), undefined);
        await store.tokens.touch(token.id, minutes(1));
        await store.tokens.revoke(token.id, minutes(2));
        await store.tokens.revoke(token.id, minutes(3));
        assert.deepEqual(await store.tokens.listForUser(user.id), [
          { ...token, lastUsedAt: minutes(1), revokedAt: minutes(2) },
        ]);
      }));

    test("tokens: where each was created from is kept, and absent when unknown", () =>
      withStore(async (store) => {
        const user = await store.users.create(newUser("from@example.com"));
        const login = await store.tokens.create({
          userId: user.id,
          kind: "session",
          name: "session",
          secretHash: "cli",
          expiresAt: minutes(60),
          userAgent: "cvm-cli/0.1.0",
          address: "192.0.2.7",
        });
        assert.equal(login.userAgent, "cvm-cli/0.1.0");
        assert.equal(login.address, "192.0.2.7");
        const unknown = await store.tokens.create({
          userId: user.id,
          kind: "session",
          name: "session",
          secretHash: "old",
          expiresAt: minutes(60),
        });
        assert.deepEqual(await store.tokens.findBySecretHash("cli"), login);
        assert.equal("userAgent" in (await store.tokens.findBySecretHash("old"))!, false);
        assert.deepEqual(
          await store.tokens.listForUser(user.id),
          [login, unknown].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id)),
        );
      }));

    test("settings: absent until saved, then read back whole", () =>
      withStore(async (store) => {
        assert.equal(await store.settings.getInfrastructure(), undefined);
        await store.settings.putInfrastructure(defaultSettings);
        const changed = { ...defaultSettings, cvmEnabled: true, runtime: "userns" as const };
        await store.settings.putInfrastructure(changed);
        assert.deepEqual(await store.settings.getInfrastructure(), changed);
      }));

    test("environments: fields round-trip; names are unique per owner, not across owners", () =>
      withStore(async (store) => {
        const ada = await store.users.create(newUser("ada@example.com"));
        const bob = await store.users.create(newUser("bob@example.com"));
        const created = await store.environments.create(newEnvironment(ada.id, "dev"));
        assert.match(created.id, /^env_[0-9a-f]{20}$/);
        assert.deepEqual(await store.environments.get(created.id), created);
        assert.deepEqual(await store.environments.getByOwnerAndName(ada.id, "dev"), created);
        await rejectsWith(store.environments.create(newEnvironment(ada.id, "dev")), "CONFLICT", "name");
        const error = await rejectsWith(store.environments.create(newEnvironment(ada.id, "dev")), "CONFLICT", "name");
        assert.equal(error.validations?.[0].detail, "is already used by another of your environments");
        const bobs = await store.environments.create(newEnvironment(bob.id, "dev", { cvm: true }));
        assert.equal((await store.environments.list({})).length, 2);
        assert.deepEqual(await store.environments.list({ ownerId: bob.id }), [bobs]);
        assert.deepEqual(await store.environments.list({ cvm: true }), [bobs]);
        assert.deepEqual(await store.environments.list({ cvm: false, name: "dev" }), [created]);
        assert.deepEqual(await store.environments.list({ state: "running" }), []);

        // A deleted environment's name is free again, and the live one is found by name.
        const deleted = await store.environments.update(created.id, created.version, { state: "deleted" });
        assert.ok(deleted);
        const again = await store.environments.create(newEnvironment(ada.id, "dev", { createdAt: minutes(5) }));
        assert.equal((await store.environments.getByOwnerAndName(ada.id, "dev"))?.id, again.id);
        await store.environments.remove(deleted.id);
        assert.equal(await store.environments.get(deleted.id), undefined);
      }));

    test("environments: paged newest first by a cursor, filtered by owner, state, kind and name in the store", () =>
      withStore(async (store) => {
        const ada = await store.users.create(newUser("ada@example.com"));
        const bob = await store.users.create(newUser("bob@example.com"));
        // 30 environments, three to a minute, so pages must break ties in time by id.
        const created: Environment[] = [];
        for (let i = 0; i < 30; i++) {
          const owner = i % 3 === 0 ? bob : ada;
          created.push(
            await store.environments.create(
              newEnvironment(owner.id, `box-${i}`, {
                createdAt: minutes(Math.floor(i / 3)),
                cvm: i % 2 === 0,
                state: i % 5 === 0 ? "running" : "stopped",
              }),
            ),
          );
        }
        const newestFirst = [...created]
          .sort((x, y) => (x.createdAt === y.createdAt ? (x.id < y.id ? 1 : -1) : x.createdAt < y.createdAt ? 1 : -1))
          .map((e) => e.id);
        type Filter = Parameters<Store["environments"]["page"]>[0];
        const walk = async (filter: Filter, limit: number) => {
          const ids: string[] = [];
          const sizes: number[] = [];
          let cursor: string | undefined;
          do {
            const page = await store.environments.page(filter, { limit, cursor });
            sizes.push(page.items.length);
            ids.push(...page.items.map((e) => e.id));
            cursor = page.nextCursor;
          } while (cursor);
          return { ids, sizes };
        };
        const all = await walk({}, 7);
        assert.deepEqual(all.sizes, [7, 7, 7, 7, 2]);
        assert.deepEqual(all.ids, newestFirst);
        const first = await store.environments.page({}, { limit: 30 });
        assert.equal(first.nextCursor, undefined, "no cursor after the last page");
        // A page's environments are whole but for their timelines.
        const { timeline: _timeline, ...newest } = created.find((e) => e.id === newestFirst[0])!;
        assert.deepEqual(first.items[0], newest);
        assert.equal("timeline" in first.items[0], false);

        const expect = (keep: (e: Environment) => boolean) =>
          newestFirst.filter((id) => keep(created.find((e) => e.id === id)!));
        assert.deepEqual(
          (await walk({ ownerId: bob.id }, 4)).ids,
          expect((e) => e.ownerId === bob.id),
        );
        assert.deepEqual(
          (await walk({ state: "running" }, 4)).ids,
          expect((e) => e.state === "running"),
        );
        assert.deepEqual(
          (await walk({ cvm: true }, 4)).ids,
          expect((e) => e.cvm),
        );
        assert.deepEqual(
          (await walk({ ownerId: ada.id, cvm: false, state: "stopped" }, 4)).ids,
          expect((e) => e.ownerId === ada.id && !e.cvm && e.state === "stopped"),
        );
        assert.deepEqual(
          (await walk({ nameContains: "x-2" }, 4)).ids,
          expect((e) => e.name.includes("x-2")),
        );
        assert.deepEqual(
          (await walk({ nameContains: "BOX-1" }, 50)).ids,
          expect((e) => e.name.startsWith("box-1")),
        );
        assert.deepEqual((await walk({ nameContains: "%" }, 50)).ids, [], "LIKE's wildcards match only themselves");
        assert.deepEqual((await walk({ nameContains: "_" }, 50)).ids, []);

        // A cursor holds while the list changes: the rows after it come once, whatever was added before it.
        const page1 = await store.environments.page({}, { limit: 10 });
        await store.environments.create(newEnvironment(ada.id, "newest", { createdAt: minutes(99) }));
        await store.environments.remove(page1.items[0].id);
        const page2 = await store.environments.page({}, { limit: 10, cursor: page1.nextCursor });
        assert.deepEqual(
          page2.items.map((e) => e.id),
          newestFirst.slice(10, 20),
        );
        await rejectsWith(store.environments.page({}, { limit: 10, cursor: "nope" }), "BAD_REQUEST", "cursor");
      }));

    test("environments: update is compare-and-set on the version; of two writers one wins", () =>
      withStore(async (store) => {
        const ada = await store.users.create(newUser("ada@example.com"));
        const env = await store.environments.create(newEnvironment(ada.id, "dev"));
        const [a, b] = await Promise.all([
          store.environments.update(env.id, env.version, { state: "pulling" }),
          store.environments.update(env.id, env.version, { state: "stopping" }),
        ]);
        const winners = [a, b].filter((e) => e !== undefined);
        assert.equal(winners.length, 1, "exactly one of two writers with the same version wins");
        const winner = winners[0];
        assert.equal(winner.version, env.version + 1);
        assert.deepEqual(await store.environments.get(env.id), winner);
        assert.equal(await store.environments.update(env.id, env.version, { state: "failed" }), undefined);
        assert.equal(await store.environments.update("env_missing", 1, { state: "failed" }), undefined);

        // Many racing writers: every success is a distinct version, none lost.
        const results = await Promise.all(
          Array.from({ length: 8 }, async (_, i) => {
            for (;;) {
              const current = await store.environments.get(env.id);
              assert.ok(current);
              const next = await store.environments.update(env.id, current.version, {
                timeline: [...current.timeline, { state: "queued", at: minutes(i + 1) }],
              });
              if (next) return next.version;
            }
          }),
        );
        assert.equal(new Set(results).size, 8);
        const final = await store.environments.get(env.id);
        assert.equal(final?.timeline.length, env.timeline.length + 8, "no appended timeline entry lost");
        assert.equal(final?.version, winner.version + 8);
      }));

    test("environments: a patch sets and clears fields", () =>
      withStore(async (store) => {
        const ada = await store.users.create(newUser("ada@example.com"));
        const env = await store.environments.create(newEnvironment(ada.id, "dev"));
        const build = await store.builds.create(env.id, minutes(1));
        const failed = await store.environments.update(env.id, env.version, {
          state: "failed",
          stateReason: "the container vanished",
          failedUnits: ["docker.service", "ssh.service"],
          systemd: "degraded",
          docker: "not-answering",
          runtime: "userns",
          buildId: build.id,
          image: "debian:12",
          cpu: 4,
          memoryGiB: 0.5,
          diskGiB: 30,
        });
        assert.ok(failed);
        assert.deepEqual(await store.environments.get(env.id), failed);
        assert.deepEqual(
          {
            stateReason: failed.stateReason,
            failedUnits: failed.failedUnits,
            buildId: failed.buildId,
            cpu: failed.cpu,
            memoryGiB: failed.memoryGiB,
          },
          {
            stateReason: "the container vanished",
            failedUnits: ["docker.service", "ssh.service"],
            buildId: build.id,
            cpu: 4,
            memoryGiB: 0.5,
          },
        );
        assert.ok(failed.updatedAt > env.updatedAt);
        const cleared = await store.environments.update(env.id, failed.version, {
          state: "queued",
          stateReason: undefined,
        });
        assert.ok(cleared);
        assert.equal("stateReason" in cleared, false);
        assert.equal(cleared.buildId, build.id);
        assert.deepEqual(await store.environments.countByState(), {
          queued: 1,
          pulling: 0,
          creating: 0,
          starting: 0,
          running: 0,
          stopping: 0,
          stopped: 0,
          failed: 0,
          deleting: 0,
          deleted: 0,
        });
      }));

    test("environments: registry credentials are kept apart and never returned by get or list", () =>
      withStore(async (store) => {
        const ada = await store.users.create(newUser("ada@example.com"));
        const secret = "s3cret-password-value";
        const env = await store.environments.create(newEnvironment(ada.id, "private"), {
          username: "robot",
          password: secret,
        });
        const seen = JSON.stringify([
          env,
          await store.environments.get(env.id),
          await store.environments.list({}),
          await store.environments.getByOwnerAndName(ada.id, "private"),
        ]);
        assert.equal(seen.includes(secret), false);
        assert.equal(seen.includes("robot"), false);
        assert.deepEqual(await store.environments.registryCredentials(env.id), { username: "robot", password: secret });
        const plain = await store.environments.create(newEnvironment(ada.id, "public"));
        assert.equal(await store.environments.registryCredentials(plain.id), undefined);
        await store.environments.remove(env.id);
        assert.equal(await store.environments.registryCredentials(env.id), undefined);
      }));

    test("audit: newest first, paginated by an opaque cursor, filtered", () =>
      withStore(async (store) => {
        // 25 entries, several sharing a time, so the cursor must break ties by id.
        const appended: AuditEntry[] = [];
        for (let i = 0; i < 25; i++) {
          appended.push(
            await store.audit.append({
              at: minutes(Math.floor(i / 3)),
              actorId: i % 2 === 0 ? "usr_even" : "usr_odd",
              actorEmail: i % 2 === 0 ? "even@example.com" : "odd@example.com",
              action: i % 5 === 0 ? "settings.update" : "environment.create",
              target: i % 5 === 0 ? "settings/infrastructure" : `environment/env_${i}`,
              before: i % 5 === 0 ? { cvmEnabled: false } : undefined,
              after: { n: i, nested: { list: [1, "two"] } },
            }),
          );
        }
        assert.match(appended[0].id, /^aud_/);
        const seen: string[] = [];
        let cursor: string | undefined;
        const sizes: number[] = [];
        do {
          const page = await store.audit.list({}, { limit: 10, cursor });
          sizes.push(page.items.length);
          seen.push(...page.items.map((e) => e.id));
          cursor = page.nextCursor;
        } while (cursor);
        assert.deepEqual(sizes, [10, 10, 5]);
        assert.equal(new Set(seen).size, 25, "every entry exactly once");
        const expectedOrder = [...appended]
          .sort((x, y) => (x.at === y.at ? (x.id < y.id ? 1 : -1) : x.at < y.at ? 1 : -1))
          .map((e) => e.id);
        assert.deepEqual(seen, expectedOrder);

        const all = await store.audit.list({}, { limit: 100 });
        assert.equal(all.nextCursor, undefined);
        const first = all.items.find((e) => e.id === appended[0].id);
        assert.deepEqual(first, appended[0]);
        assert.equal(all.items.find((e) => e.id === appended[1].id)?.before, undefined);

        const count = async (filter: Parameters<Store["audit"]["list"]>[0]) =>
          (await store.audit.list(filter, { limit: 100 })).items.length;
        assert.equal(await count({ actorId: "usr_even" }), 13);
        assert.equal(await count({ action: "settings.update" }), 5);
        assert.equal(await count({ target: "environment/env_7" }), 1);
        assert.equal(await count({ since: minutes(7) }), 4);
        assert.equal(await count({ until: minutes(0) }), 3);
        assert.equal(await count({ since: minutes(1), until: "2026-01-01T00:02:00Z" }), 6);
        assert.equal(await count({ actorId: "usr_odd", action: "settings.update" }), 2);
        const filtered = await store.audit.list({ actorId: "usr_even" }, { limit: 5 });
        const rest = await store.audit.list({ actorId: "usr_even" }, { limit: 100, cursor: filtered.nextCursor });
        assert.equal(filtered.items.length + rest.items.length, 13);

        await rejectsWith(store.audit.list({}, { limit: 10, cursor: "not-a-cursor" }), "BAD_REQUEST", "cursor");
        await rejectsWith(store.audit.list({ since: "yesterday" }, { limit: 10 }), "BAD_REQUEST", "since");
      }));

    test("builds: log lines numbered 1, 2, 3... per build, even when appended concurrently", () =>
      withStore(async (store) => {
        const ada = await store.users.create(newUser("ada@example.com"));
        const env = await store.environments.create(newEnvironment(ada.id, "dev"));
        const one = await store.builds.create(env.id, minutes(0));
        const two = await store.builds.create(env.id, minutes(1));
        assert.match(one.id, /^bld_/);
        const lines = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            store.builds.appendLog(i % 4 === 0 ? two.id : one.id, `line ${i}`, minutes(i)),
          ),
        );
        const seqs = (buildId: string) =>
          lines
            .filter((l) => l.buildId === buildId)
            .map((l) => l.seq)
            .sort((a, b) => a - b);
        assert.deepEqual(
          seqs(one.id),
          Array.from({ length: 30 }, (_, i) => i + 1),
        );
        assert.deepEqual(
          seqs(two.id),
          Array.from({ length: 10 }, (_, i) => i + 1),
        );
        const stored = await store.builds.logs(one.id);
        assert.deepEqual(
          stored.map((l) => l.seq),
          seqs(one.id),
        );
        assert.deepEqual(
          stored,
          lines.filter((l) => l.buildId === one.id).sort((a, b) => a.seq - b.seq),
        );
        assert.deepEqual(
          (await store.builds.logs(one.id, 27)).map((l) => l.seq),
          [28, 29, 30],
        );
        await assert.rejects(store.builds.appendLog("bld_missing", "x", minutes(0)), { code: "NOT_FOUND" });
      }));

    test("builds: listed per environment, finished with an outcome, durations for metrics", () =>
      withStore(async (store) => {
        const ada = await store.users.create(newUser("ada@example.com"));
        const env = await store.environments.create(newEnvironment(ada.id, "dev"));
        const one = await store.builds.create(env.id, minutes(0));
        const two = await store.builds.create(env.id, minutes(10));
        await store.builds.finish(one.id, "running", "2026-01-01T00:01:30.000Z");
        assert.deepEqual(await store.builds.get(one.id), {
          ...one,
          outcome: "running",
          finishedAt: "2026-01-01T00:01:30.000Z",
        });
        assert.deepEqual(
          (await store.builds.listForEnvironment(env.id)).map((b) => b.id),
          [one.id, two.id],
        );
        assert.deepEqual(await store.builds.durations(), [{ outcome: "running", seconds: 90 }]);
        await store.builds.appendLog(two.id, "kept until the environment goes", minutes(11));
        await store.environments.remove(env.id);
        assert.equal(await store.builds.get(two.id), undefined);
        assert.deepEqual(await store.builds.logs(two.id), []);
      }));

    test("two replicas on one database: one first user, one CAS winner, one log sequence", async () => {
      const fresh = await backend.fresh();
      const replicas = [await openStore(fresh.options), await openStore(fresh.options)];
      try {
        const firsts = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            replicas[i % 2].users.createFirst({ ...newUser(`first${i}@example.com`), role: "site-admin" }),
          ),
        );
        const admin = firsts.filter((u) => u !== undefined);
        assert.equal(admin.length, 1);
        assert.equal(await replicas[1].users.count(), 1);

        const env = await replicas[0].environments.create(newEnvironment(admin[0].id, "dev"));
        const updates = await Promise.all(
          replicas.map((r, i) =>
            r.environments.update(env.id, env.version, { state: i === 0 ? "pulling" : "stopping" }),
          ),
        );
        assert.equal(updates.filter((u) => u !== undefined).length, 1);

        const build = await replicas[1].builds.create(env.id, minutes(0));
        const lines = await Promise.all(
          Array.from({ length: 20 }, (_, i) => replicas[i % 2].builds.appendLog(build.id, `line ${i}`, minutes(i))),
        );
        assert.deepEqual(
          lines.map((l) => l.seq).sort((a, b) => a - b),
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        assert.equal((await replicas[0].builds.logs(build.id)).length, 20);
      } finally {
        await Promise.all(replicas.map((r) => r.close()));
        await fresh.drop();
      }
    });

    test("audit: a nonsense page size still answers a page", () =>
      withStore(async (store) => {
        await store.audit.append({
          at: minutes(0),
          actorId: "usr_x",
          actorEmail: "x@example.com",
          action: "settings.update",
          target: "settings/infrastructure",
          before: null,
          after: { cvmEnabled: true },
        });
        for (const limit of [Number.NaN, 0, -5, 2.7]) {
          const page = await store.audit.list({}, { limit });
          assert.equal(page.items.length, 1, String(limit));
          assert.equal(page.items[0].before, null);
        }
      }));

    test("workspace: shared ports, idle stop and last use per environment; private and default remove; gone with the environment", () =>
      withStore(async (store) => {
        const ada = await store.users.create(newUser("ada@example.com"));
        const env = await store.environments.create(newEnvironment(ada.id, "dev"));
        assert.deepEqual(await store.workspace.portShares(env.id), []);
        await store.workspace.setPortShare(env.id, 8080, "public", minutes(1));
        await store.workspace.setPortShare(env.id, 3000, "authenticated", minutes(1));
        await store.workspace.setPortShare(env.id, 8080, "authenticated", minutes(2));
        assert.deepEqual(await store.workspace.portShares(env.id), [
          { port: 3000, share: "authenticated" },
          { port: 8080, share: "authenticated" },
        ]);
        await store.workspace.setPortShare(env.id, 3000, "private", minutes(3));
        assert.deepEqual(await store.workspace.portShares(env.id), [{ port: 8080, share: "authenticated" }]);

        assert.equal(await store.workspace.idleStopMinutes(env.id), undefined);
        await store.workspace.setIdleStopMinutes(env.id, 0, minutes(1));
        assert.equal(await store.workspace.idleStopMinutes(env.id), 0);
        await store.workspace.setIdleStopMinutes(env.id, 90, minutes(2));
        assert.equal(await store.workspace.idleStopMinutes(env.id), 90);
        await store.workspace.setIdleStopMinutes(env.id, undefined, minutes(3));
        assert.equal(await store.workspace.idleStopMinutes(env.id), undefined);

        assert.equal(await store.workspace.lastActiveAt(env.id), undefined);
        await store.workspace.recordActivity(env.id, minutes(10));
        await store.workspace.recordActivity(env.id, minutes(5));
        assert.equal(await store.workspace.lastActiveAt(env.id), minutes(10), "an earlier report changes nothing");
        await store.workspace.recordActivity(env.id, minutes(11));
        assert.equal(await store.workspace.lastActiveAt(env.id), minutes(11));

        await store.workspace.setIdleStopMinutes(env.id, 5, minutes(4));
        await store.environments.remove(env.id);
        assert.deepEqual(await store.workspace.portShares(env.id), []);
        assert.equal(await store.workspace.idleStopMinutes(env.id), undefined);
        assert.equal(await store.workspace.lastActiveAt(env.id), undefined);
      }));

    if (backend.name === "sqlite") {
      test("sqlite: the database file is private to its owner", () =>
        withStore(async (_store, fresh) => {
          const path = sqlitePath(fresh.options.dataDir);
          assert.equal(statSync(path).mode & 0o777, 0o600);
          assert.equal(statSync(fresh.options.dataDir).mode & 0o777, 0o700);
        }));
    }
  });
}

test("opening a store that cannot be reached is a clear 503 that hides the password", async () => {
  const error = await openStore({
    dataDir: "/nonexistent",
    postgresUrl: "postgres://cvm:hunter2@127.0.0.1:1/cvm",
  }).then(
    () => assert.fail("opened an unreachable database"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof CvmError);
  assert.equal(error.code, "UNAVAILABLE");
  assert.match(error.message, /^Cannot open the store \(PostgreSQL at postgres:\/\/cvm:\*\*\*@127\.0\.0\.1:1\/cvm\): /);
  assert.equal(error.message.includes("hunter2"), false);
  const file = join(mkdtempSync(join(tmpdir(), "cvm-store-test-")), "file");
  writeFileSync(file, "not a directory");
  await assert.rejects(openStore({ dataDir: file }), { code: "UNAVAILABLE" });
  rmSync(join(file, ".."), { recursive: true, force: true });
});
