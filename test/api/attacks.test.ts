/**
 * The attacks of issue 11 that need no environment, each as the attacker made
 * it, over real HTTP against a real server: cross-site writes riding the
 * session cookie, a foreign Host (DNS rebinding), claiming a fresh install,
 * `Origin: null` on the terminal, password guessing per account, per address
 * and across replicas, and telling known emails from unknown ones by time.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ApiError, CvmClient } from "../../src/client/index.js";
import { loginThrottle } from "../../src/core/login-throttle.js";
import { type FreshDatabase, freshPostgresUrl } from "../../src/store/testing.js";
import { raw } from "../harness/raw-http.js";
import { password, startTestServer, type TestServer } from "../harness/server.js";

const evil = "http://evil.example";

async function sessionCookie(url: string, email: string): Promise<string> {
  const response = await fetch(`${url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  assert.equal(response.status, 200);
  return (response.headers.get("set-cookie") ?? "").split(";")[0];
}

async function status(promise: Promise<unknown>): Promise<number> {
  return promise.then(
    () => 200,
    (error: unknown) => (error instanceof ApiError ? error.status : Promise.reject(error)),
  );
}

describe("attacks on a fresh install and on the session cookie", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer("sqlite");
  });
  after(() => t?.close());

  test("the first admin needs the setup code from the log: none, a wrong one and a cross-site one are refused", async () => {
    const code = t.server.setupCode ?? "";
    const attempt = (body: Record<string, unknown>, headers: Record<string, string>) =>
      raw(t.url, {
        method: "POST",
        path: "/api/v1/setup/first-admin",
        headers,
        body: JSON.stringify({ email: "attacker@evil.example", password: "attacker's password", ...body }),
      });
    const json = { "content-type": "application/json" };
    const missing = await attempt({}, json);
    assert.equal(missing.status, 400);
    assert.match(missing.body, /setupCode/);
    const wrong = await attempt({ setupCode: "AAAA-BBBB-CCCC" }, json);
    assert.equal(wrong.status, 403);
    assert.match(wrong.body, /server's log/);
    // Even the right code cannot be sent by another site's page (a simple request needs no preflight).
    const crossSite = await attempt({ setupCode: code }, { "content-type": "text/plain", origin: evil });
    assert.equal(crossSite.status, 403);
    assert.equal((await t.anonymous().setupStatus()).needsFirstAdmin, true, "nothing was created");
    // Typed with spaces and in lower case, the code still works.
    const admin = t.anonymous();
    const session = await admin.createFirstAdmin({
      email: "admin@example.com",
      password,
      setupCode: code.toLowerCase().replaceAll("-", " "),
    });
    assert.equal(session.user.role, "site-admin");
  });

  test("a cookie-authenticated write from another origin is refused: text/plain, a form, Sec-Fetch-Site cross-site", async () => {
    const cookie = await sessionCookie(t.url, "admin@example.com");
    const tokensBefore = (await t.anonymous().login({ email: "admin@example.com", password })).token;
    const admin = t.anonymous();
    admin.token = tokensBefore;
    const count = async () => (await admin.listTokens()).items.filter((token) => token.kind === "api").length;
    const apiTokens = await count();

    // The attack: a 365-day API token from a text/plain POST.
    const token = await raw(t.url, {
      method: "POST",
      path: "/api/v1/tokens",
      headers: { cookie, origin: evil, "content-type": "text/plain" },
      body: JSON.stringify({ name: "pwned", ttlDays: 365 }),
    });
    assert.equal(token.status, 403, token.body);
    assert.match(JSON.parse(token.body).message, /Cross-site/);
    // A form-encoded environment.
    const form = await raw(t.url, {
      method: "POST",
      path: "/api/v1/environments",
      headers: { cookie, origin: evil, "content-type": "application/x-www-form-urlencoded" },
      body: "name=pwned&image=debian",
    });
    assert.equal(form.status, 403);
    // No Origin, but the browser says the request came from another site.
    const fetchSite = await raw(t.url, {
      method: "POST",
      path: "/api/v1/auth/logout",
      headers: { cookie, "sec-fetch-site": "cross-site" },
    });
    assert.equal(fetchSite.status, 403);
    // A sandboxed frame's Origin: null.
    const sandboxed = await raw(t.url, {
      method: "POST",
      path: "/api/v1/tokens",
      headers: { cookie, origin: "null", "content-type": "text/plain" },
      body: "{}",
    });
    assert.equal(sandboxed.status, 403);
    assert.equal(await count(), apiTokens, "no token was created");
    assert.deepEqual((await admin.listEnvironments()).items, [], "no environment was created");

    // The dashboard's own write, and a script's Bearer token from anywhere, go through.
    const own = await raw(t.url, {
      method: "POST",
      path: "/api/v1/tokens",
      headers: { cookie, origin: t.url, "sec-fetch-site": "same-origin", "content-type": "application/json" },
      body: JSON.stringify({ name: "dashboard" }),
    });
    assert.equal(own.status, 201, own.body);
    const script = await raw(t.url, {
      method: "POST",
      path: "/api/v1/tokens",
      headers: { authorization: `Bearer ${tokensBefore}`, origin: evil, "content-type": "application/json" },
      body: JSON.stringify({ name: "script" }),
    });
    assert.equal(script.status, 201, script.body);
    // Same origin, but a form: bodies are JSON only.
    const sameOriginForm = await raw(t.url, {
      method: "POST",
      path: "/api/v1/environments",
      headers: { cookie, origin: t.url, "content-type": "application/x-www-form-urlencoded" },
      body: "name=x&image=debian",
    });
    assert.equal(sameOriginForm.status, 415);
    // API token creation is audited, without the secret.
    const audited = (await admin.audit({ action: "token.create" })).items;
    assert.equal(audited.length, 2);
    assert.equal(JSON.stringify(audited).includes(JSON.parse(own.body).secret), false, "no secret in the audit log");
  });

  test("a Host that is not this server's (DNS rebinding) is a 421; its own names, IPs and loopback names pass", async () => {
    const port = new URL(t.url).port;
    for (const path of ["/api/v1/setup", "/", "/healthz", "/metrics"]) {
      const rebound = await raw(t.url, { path, headers: { host: `evil.example:${port}` } });
      assert.equal(rebound.status, 421, `${path}: ${rebound.body}`);
    }
    const upgrade = await raw(t.url, {
      path: "/api/v1/environments/x/terminal",
      headers: { host: `evil.example:${port}`, connection: "Upgrade", upgrade: "websocket" },
    });
    assert.equal(upgrade.status, 421);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, "127.0.0.1"]) {
      assert.equal((await raw(t.url, { path: "/api/v1/setup", headers: { host } })).status, 200, host);
    }
  });

  test("Origin: null or another site's origin on the terminal upgrade is a 403, not a 500", async () => {
    const cookie = await sessionCookie(t.url, "admin@example.com");
    const upgrade = (origin: string) =>
      raw(t.url, {
        path: "/api/v1/environments/nothing/terminal",
        headers: {
          cookie,
          origin,
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
      });
    for (const origin of ["null", evil, "not a url"]) {
      const refused = await upgrade(origin);
      assert.equal(refused.status, 403, `${origin}: ${refused.body}`);
      assert.match(JSON.parse(refused.body).message, /Cross-site/);
    }
    // From the server's own page, the same upgrade gets as far as the environment lookup.
    assert.equal((await upgrade(t.url)).status, 404);
  });
});

describe("password guessing", () => {
  let t: TestServer;
  let admin: CvmClient & { user: { id: string } };
  before(async () => {
    // Behind a trusted proxy, each request says its client's address: many addresses from one test.
    t = await startTestServer({ serverOptions: { proxyTrusted: true } });
    admin = await t.firstAdmin();
  });
  after(() => t?.close());

  const login = (email: string, pass: string, address: string) =>
    raw(t.url, {
      method: "POST",
      path: "/api/v1/auth/login",
      headers: { "content-type": "application/json", "x-forwarded-for": `203.0.113.1, ${address}` },
      body: JSON.stringify({ email, password: pass }),
    });

  test("one account: after 5 failures a 429 with Retry-After, even for the right password; failures and the lockout are audited", async () => {
    const victim = await t.userWithRole(admin, "member", "victim@example.com");
    const statuses: number[] = [];
    for (let i = 0; i < loginThrottle.account.free; i++) {
      statuses.push((await login(victim.user.email, `guess ${i}`, `198.51.100.${i + 1}`)).status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401]);
    // The sixth failure starts the lock; from then on even the right password waits.
    assert.equal((await login(victim.user.email, "guess 6", "198.51.100.6")).status, 401);
    const locked = await login(victim.user.email, password, "198.51.100.7");
    assert.equal(locked.status, 429, locked.body);
    assert.equal(locked.headers["retry-after"], "1");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await login(victim.user.email, password, "198.51.100.8")).status, 200, "after the wait");

    const failed = (await admin.audit({ action: "auth.login-failed", target: `user/${victim.user.id}` })).items;
    assert.equal(failed.length, 6);
    assert.deepEqual(failed[0].after, { address: "198.51.100.6", failures: 6, addressFailures: 1 });
    const lockouts = (await admin.audit({ action: "auth.lockout" })).items;
    assert.deepEqual(
      lockouts.map((entry) => entry.target),
      ["account/victim@example.com"],
    );
  });

  test("one address spraying many accounts: after 30 failures a 429, while other addresses still sign in", async () => {
    const address = "192.0.2.77";
    for (let i = 0; i < loginThrottle.address.free + 1; i++) {
      assert.equal((await login(`nobody${i}@example.com`, "spray", address)).status, 401, `attempt ${i + 1}`);
    }
    const blocked = await login("admin@example.com", password, address);
    assert.equal(blocked.status, 429);
    assert.ok(Number(blocked.headers["retry-after"]) >= 1);
    assert.equal((await login("admin@example.com", password, "192.0.2.78")).status, 200);
    // Without --proxy-trusted the header would be ignored; here the nearest hop counts, not the first.
    const lockouts = (await admin.audit({ action: "auth.lockout", target: `address/${address}` })).items;
    assert.equal(lockouts.length, 1);
  });

  test("a known and an unknown email take the same time to refuse (medians within 25%)", async () => {
    const known: string[] = [];
    for (let i = 0; i < 12; i++)
      known.push((await t.userWithRole(admin, "member", `timed${i}@example.com`)).user.email);
    const timed = async (email: string, address: string) => {
      const started = performance.now();
      const answer = await login(email, "not the password", address);
      assert.equal(answer.status, 401);
      return performance.now() - started;
    };
    const knownMs: number[] = [];
    const unknownMs: number[] = [];
    // Interleaved, each from its own address and account, and each side first in turn, so neither the
    // throttle, nor drift, nor going second favours one side.
    for (let i = 0; i < known.length; i++) {
      const pair = [
        async () => knownMs.push(await timed(known[i], `10.9.0.${i}`)),
        async () => unknownMs.push(await timed(`ghost${i}@example.com`, `10.9.1.${i}`)),
      ];
      for (const measure of i % 2 === 0 ? pair : pair.reverse()) await measure();
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    const [k, u] = [median(knownMs), median(unknownMs)];
    console.log(`login refusal, median of ${known.length}: known email ${k.toFixed(1)} ms, unknown ${u.toFixed(1)} ms`);
    assert.ok(Math.abs(k - u) / Math.max(k, u) < 0.25, `known ${k.toFixed(1)} ms vs unknown ${u.toFixed(1)} ms`);
  });
});

describe("password guessing across replicas", () => {
  let database: FreshDatabase;
  const servers: TestServer[] = [];
  before(async () => {
    database = await freshPostgresUrl();
    for (let i = 0; i < 2; i++) servers.push(await startTestServer({ store: { postgresUrl: database.url } }));
  });
  after(async () => {
    for (const server of servers) await server.close();
    await database?.drop();
  });

  test("failures counted by one replica lock the account on the other", async () => {
    const [a, b] = servers;
    const admin = new CvmClient({ baseUrl: a.url });
    admin.token = (
      await admin.createFirstAdmin({ email: "admin@example.com", password, setupCode: a.server.setupCode ?? "" })
    ).token;
    const guess = (server: TestServer) =>
      status(server.anonymous().login({ email: "admin@example.com", password: "a guess" }));
    const answers: number[] = [];
    for (let i = 0; i <= loginThrottle.account.free; i++) answers.push(await guess(i % 2 === 0 ? a : b));
    assert.deepEqual(answers, [401, 401, 401, 401, 401, 401]);
    assert.equal(await status(b.anonymous().login({ email: "admin@example.com", password })), 429);
    assert.equal(await status(a.anonymous().login({ email: "admin@example.com", password })), 429);
  });
});
