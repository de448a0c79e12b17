/**
 * Backups (issue 11, item 9): `cvm admin backup FILE` (the real CLI) writes a
 * consistent snapshot while the server keeps writing, and `cvm server
 * --restore FILE` brings it back into a new data dir, where every user,
 * token, environment and audit row is found and the sealed registry
 * passwords open with the key file carried beside the backup; without that
 * key the server refuses to start and names the key it needs. The provider
 * is the fake (no workload matters here).
 */

import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { type CvmClient, collectPages } from "../../src/client/index.js";
import type { Store } from "../../src/core/store.js";
import { createFakeProvider } from "../../src/providers/fake/index.js";
import { startServer } from "../../src/server/index.js";
import { secretKeyFile } from "../../src/server/secret-keys.js";
import { type CliResult, compiledCvm, runCvm } from "../harness/cli.js";
import { startTestServer, type TestServer } from "../harness/server.js";

const registryPassword = "s3cret-registry-password";

/** The compiled cvm, with these variables on top of the test's own. */
async function cvm(args: string[], env: Record<string, string>): Promise<CliResult> {
  await compiledCvm();
  return runCvm(args, { env: { ...process.env, ...env }, timeout: 60_000 });
}

/** Every row a backup must carry, read through the store. */
async function rows(store: Store) {
  const users = await collectPages(({ cursor }) => store.users.page({}, { limit: 100, cursor }));
  const tokens = (await Promise.all(users.map((u) => store.tokens.listForUser(u.id)))).flat();
  const environments = await store.environments.list({});
  const audit = (await store.audit.list({}, { limit: 1000 })).items;
  return { users, tokens, environments, audit };
}

const ids = (items: { id: string }[]) => new Set(items.map((item) => item.id));

describe("backup and restore (sqlite)", () => {
  let t: TestServer;
  let admin: CvmClient;
  let member: CvmClient;
  const scratch = mkdtempSync(join(tmpdir(), "cvm-backup-test-"));
  const backup = join(scratch, "cvm-backup.db");
  let before_: Awaited<ReturnType<typeof rows>>;
  let after_: Awaited<ReturnType<typeof rows>>;

  before(async () => {
    t = await startTestServer({ provider: createFakeProvider(), skipReconcile: true });
    admin = await t.firstAdmin();
    member = await t.userWithRole(admin, "member");
    await member.createToken({ name: "script" });
    for (const name of ["one", "two"]) {
      await member.createEnvironment({
        name,
        image: "registry.example/private:1",
        registryCredentials: { username: "robot", password: registryPassword },
      });
    }
    // The builds settle (the fake runs them at once), so these rows no longer change.
    for (const name of ["one", "two"]) {
      for await (const _ of member.logs(name, { follow: true, signal: AbortSignal.timeout(10_000) })) {
        // to the end
      }
    }
  });
  after(async () => {
    await t?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  test("cvm admin backup writes a 0600 snapshot while the server keeps writing; no secret in it is readable", async () => {
    before_ = await rows(t.server.store);
    // Writes go on during the backup: the snapshot holds each of them whole or not at all.
    // The admin writes them, whom no member quota holds to ten environments.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await admin.createEnvironment({ name: `busy-${written}`, image: "debian:12" });
        written++;
      }
    })();
    const result = await cvm(["admin", "backup", backup], { CVM_URL: t.url, CVM_TOKEN: admin.token ?? "" });
    writing = false;
    await writer;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Wrote .*cvm-backup\.db \(\d+ bytes\)/);
    assert.match(result.stderr, /secret\.key/);
    assert.equal(statSync(backup).mode & 0o777, 0o600);
    assert.ok(written > 0, "the server kept writing");
    after_ = await rows(t.server.store);
    const bytes = readFileSync(backup);
    assert.equal(
      bytes.includes(registryPassword),
      false,
      "registry passwords are sealed in the database and its backups",
    );
    assert.equal(bytes.subarray(0, 15).toString(), "SQLite format 3");
    // Members may not take one; a second backup to the same file is refused rather than overwriting it.
    assert.equal(
      (await cvm(["admin", "backup", join(scratch, "m.db")], { CVM_URL: t.url, CVM_TOKEN: member.token ?? "" })).code,
      1,
    );
    assert.notEqual((await cvm(["admin", "backup", backup], { CVM_URL: t.url, CVM_TOKEN: admin.token ?? "" })).code, 0);
  });

  test("restored into a new data dir with the key file beside it: every row, and the secrets open", async () => {
    const dataDir = join(scratch, "restored");
    // How the key travels: the old data dir's secret.key, copied apart from the backup (or CVM_SECRET_KEY).
    const keyDir = mkdtempSync(join(scratch, "key-"));
    copyFileSync(secretKeyFile(t.dataDir), join(keyDir, "secret.key"));
    cvmRestoreLayout(dataDir, keyDir);
    const restored = await startServer({
      listen: "127.0.0.1:0",
      dataDir,
      provider: "docker",
      providerInstance: createFakeProvider(),
      restoreFrom: backup,
      skipReconcile: true,
      logger: pino({ level: "silent" }),
      webRoot: join(dataDir, "no-dashboard"),
    });
    try {
      const found = await rows(restored.store);
      for (const kind of ["users", "tokens", "environments", "audit"] as const) {
        const got = new Map(found[kind].map((row) => [row.id, row]));
        for (const row of before_[kind]) assert.deepEqual(got.get(row.id), row, `${kind} ${row.id} restored as it was`);
        // Consistent: nothing that never existed, and nothing half-written.
        const existed = ids(after_[kind]);
        for (const row of found[kind]) assert.ok(existed.has(row.id), `${kind} ${row.id} existed on the server`);
      }
      for (const environment of found.environments.filter((e) => e.name.startsWith("busy-"))) {
        assert.ok((await restored.store.builds.listForEnvironment(environment.id)).length > 0, "with its build");
      }
      for (const environment of before_.environments) {
        assert.deepEqual(await restored.store.environments.registryCredentials(environment.id), {
          username: "robot",
          password: registryPassword,
        });
      }
      console.log(
        `restored ${found.users.length} users, ${found.tokens.length} tokens, ${found.environments.length} environments, ${found.audit.length} audit rows (backup ${statSync(backup).size} bytes)`,
      );
    } finally {
      await restored.close();
    }
  });

  test("without the key the restored server refuses to start and names the key; a data dir with a database is never overwritten", async () => {
    const dataDir = join(scratch, "no-key");
    const start = (dir: string) =>
      startServer({
        listen: "127.0.0.1:0",
        dataDir: dir,
        provider: "docker",
        providerInstance: createFakeProvider(),
        restoreFrom: backup,
        skipReconcile: true,
        logger: pino({ level: "silent" }),
      });
    await assert.rejects(start(dataDir), /sealed with key [0-9a-f]{8}, which this server does not have/);
    await assert.rejects(start(t.dataDir), /exists: restore into a new data dir/);
  });
});

/** The new data dir with the carried key file in it, as an operator lays it out before `--restore`. */
function cvmRestoreLayout(dataDir: string, keyDir: string): void {
  mkdirSync(dataDir, { mode: 0o700 });
  copyFileSync(join(keyDir, "secret.key"), secretKeyFile(dataDir));
}

describe("backup with PostgreSQL", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ store: "postgres", provider: createFakeProvider() });
  });
  after(() => t?.close());

  test("answers a 409 naming pg_dump", async () => {
    const admin = await t.firstAdmin();
    const result = await cvm(["admin", "backup", join(tmpdir(), `never-${process.pid}.db`)], {
      CVM_URL: t.url,
      CVM_TOKEN: admin.token ?? "",
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /pg_dump/);
  });
});
