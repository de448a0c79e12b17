/** Accounts over real HTTP on both stores: first run, sign-in, tokens, deactivation, roles. */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ApiError, CvmClient } from "../../src/client/index.js";
import { secretHash } from "../../src/server/accounts.js";
import { refused } from "../harness/refusals.js";
import { password, startTestServer, storeKinds, type TestServer } from "../harness/server.js";

for (const kind of storeKinds) {
  describe(`accounts (${kind})`, () => {
    let t: TestServer;
    let admin: CvmClient;
    before(async () => {
      t = await startTestServer(kind);
    });
    after(() => t?.close());

    test("a fresh install needs its first admin; two racing first-admin requests make exactly one", async () => {
      assert.deepEqual(await t.anonymous().setupStatus(), { needsFirstAdmin: true, cvmEnabled: false });
      const setupCode = t.server.setupCode ?? "";
      assert.match(setupCode, /^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
      const attempts = await Promise.allSettled(
        ["a@example.com", "b@example.com", "c@example.com"].map((email) =>
          t.anonymous().createFirstAdmin({ email, password, setupCode }),
        ),
      );
      const won = attempts.filter((a) => a.status === "fulfilled");
      assert.equal(won.length, 1, "exactly one first admin");
      for (const lost of attempts.filter((a) => a.status === "rejected")) {
        assert.equal(((lost as PromiseRejectedResult).reason as ApiError).status, 409);
      }
      const session = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<CvmClient["createFirstAdmin"]>>>).value;
      assert.equal(session.user.role, "site-admin");
      assert.match(session.token, /^cvm_[A-Za-z0-9_-]{43}$/);
      assert.equal((await t.anonymous().setupStatus()).needsFirstAdmin, false);
      // Later accounts come only from an admin; the code is spent.
      assert.equal(t.server.setupCode, undefined);
      await refused(t.anonymous().createFirstAdmin({ email: "late@example.com", password, setupCode }), 409);
      admin = t.anonymous();
      admin.token = session.token;
      assert.equal((await admin.whoami()).email, session.user.email);
    });

    test("login: a wrong password and an unknown email are both 401; the right one answers a session", async () => {
      const email = (await admin.whoami()).email;
      await refused(t.anonymous().login({ email, password: "wrong password" }), 401);
      await refused(t.anonymous().login({ email: "nobody@example.com", password }), 401);
      const session = await t.anonymous().login({ email, password });
      assert.ok(Date.parse(session.expiresAt) > Date.now() + 6 * 24 * 3600 * 1000, "a session lasts 7 days");
    });

    test("the session cookie is HttpOnly and SameSite=Strict, works alone, and logout clears it", async () => {
      const email = (await admin.whoami()).email;
      const response = await fetch(`${t.url}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email, password }),
      });
      assert.equal(response.status, 200);
      const cookie = response.headers.get("set-cookie") ?? "";
      assert.match(cookie, /cvm_session=cvm_/);
      assert.match(cookie, /HttpOnly/i);
      assert.match(cookie, /SameSite=Strict/i);
      const pair = cookie.split(";")[0];
      const me = await fetch(`${t.url}/api/v1/users/me`, { headers: { cookie: pair } });
      assert.equal(me.status, 200);
      // A browser sends its page's Origin with every write; the cookie works only with this server's own.
      const out = await fetch(`${t.url}/api/v1/auth/logout`, {
        method: "POST",
        headers: { cookie: pair, origin: t.url },
      });
      assert.equal(out.status, 204);
      assert.match(out.headers.get("set-cookie") ?? "", /cvm_session=;/);
      assert.equal((await fetch(`${t.url}/api/v1/users/me`, { headers: { cookie: pair } })).status, 401);
      assert.doesNotMatch(cookie, /Secure/, "plain HTTP on loopback");
      const proxied = await fetch(`${t.url}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-proto": "https" },
        body: JSON.stringify({ email, password }),
      });
      assert.doesNotMatch(
        proxied.headers.get("set-cookie") ?? "",
        /;\s*Secure/i,
        "X-Forwarded-* counts only with --proxy-trusted",
      );
    });

    test("no credentials, a revoked token and an expired token are refused with 401", async () => {
      await refused(t.anonymous().whoami(), 401);
      const created = await admin.createToken({ name: "ci", ttlDays: 2 });
      assert.equal(created.token.kind, "api");
      const client = t.anonymous();
      client.token = created.secret;
      assert.equal((await client.whoami()).role, "site-admin");
      const listed = (await admin.listTokens()).items.map((token) => token.id);
      assert.ok(listed.includes(created.token.id));
      await admin.revokeToken(created.token.id);
      const error = await refused(client.whoami(), 401);
      assert.match(error.body.message, /revoked/);

      // An expired one, written straight into the store: the clock cannot be waited out.
      const me = await admin.whoami();
      const secret = `cvm_${"x".repeat(43)}`;
      await t.server.store.tokens.create({
        userId: me.id,
        kind: "api",
        name: "old",
        secretHash: secretHash(secret),
        expiresAt: new Date(Date.now() - 1000).toISOString(),
      });
      client.token = secret;
      assert.match((await refused(client.whoami(), 401)).body.message, /expired/);
      // Bad ttlDays is a 400 on the field.
      const bad = await refused(admin.createToken({ name: "x", ttlDays: 400 }), 400);
      assert.deepEqual(
        bad.body.validations?.map((v) => v.field),
        ["ttlDays"],
      );
    });

    test("users: only admins create them; bad emails, passwords and roles are 400 on their fields", async () => {
      const bad = await refused(
        admin.createUser({ email: "not-an-email", password: "short", role: "emperor" as never }),
        400,
      );
      assert.deepEqual(bad.body.validations?.map((v) => v.field).sort(), ["email", "password", "role"]);
      await admin.createUser({ email: "dup@example.com", password, role: "member" });
      await refused(admin.createUser({ email: "dup@example.com", password, role: "member" }), 409);
      const member = await t.userWithRole(admin, "member");
      await refused(member.createUser({ email: "x@example.com", password, role: "member" }), 403);
      await refused(member.listUsers(), 403);
    });

    test("roles: a member cannot change settings or read the audit log; a manager may change settings but not roles", async () => {
      const member = await t.userWithRole(admin, "member");
      const manager = await t.userWithRole(admin, "site-manager");
      await refused(member.updateInfrastructure({ runtime: "userns" }), 403);
      await refused(member.audit(), 403);
      await refused(member.infrastructureChecks(), 403);
      assert.equal((await member.infrastructure()).cvmEnabled, false, "a member may read the settings");
      const changed = await manager.updateInfrastructure({ limits: { maxCpu: 8 } });
      assert.equal(changed.limits.maxCpu, 8);
      const error = await refused(manager.updateUser(member.user.id, { role: "site-admin" }), 403);
      assert.match(error.body.message, /site-admin/);
      assert.equal((await admin.listUsers()).items.find((u) => u.id === member.user.id)?.role, "member");
      assert.ok((await manager.audit()).items.length > 0, "a manager reads the audit log");
    });

    test("a deactivated user cannot sign in; their tokens are revoked and stay so when reactivated", async () => {
      const user = await t.userWithRole(admin, "member");
      const api = await user.createToken({ name: "script" });
      // Used just before, so a cached check of the token must not outlive the change.
      assert.equal((await user.whoami()).active, true);
      await admin.updateUser(user.user.id, { active: false });
      await refused(user.whoami(), 401);
      await refused(t.anonymous().login({ email: user.user.email, password }), 401);
      await admin.updateUser(user.user.id, { active: true });
      assert.match((await refused(user.whoami(), 401)).body.message, /revoked/, "the old session stays revoked");
      const script = t.anonymous();
      script.token = api.secret;
      await refused(script.whoami(), 401);
      user.token = (await t.anonymous().login({ email: user.user.email, password })).token;
      assert.equal((await user.whoami()).id, user.user.id, "a fresh sign-in works");
      await refused(user.listUsers(), 403);
      await admin.updateUser(user.user.id, { role: "site-manager" });
      assert.equal((await user.listUsers()).items.length > 0, true, "a new role applies at once");
    });

    test("the last active site admin cannot be demoted", async () => {
      const me = await admin.whoami();
      const error = await refused(admin.updateUser(me.id, { role: "member" }), 409);
      assert.equal(error.body.validations?.[0].field, "role");
    });
  });
}
