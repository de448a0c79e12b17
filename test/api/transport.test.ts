/**
 * TLS and headers (issue 11, item 8) against a real server: HTTPS with
 * --tls-cert/--tls-key (a Secure cookie, HSTS, the terminal over wss), the
 * dashboard's security headers, /metrics behind a token and on an address of
 * its own, and X-Forwarded-* believed only with --proxy-trusted. The provider
 * is the fake: its terminal echoes what it is sent.
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { WebSocket } from "ws";
import { createFakeProvider } from "../../src/providers/fake/index.js";
import { raw } from "../harness/raw-http.js";
import { password, startTestServer, type TestServer } from "../harness/server.js";

const scratch = mkdtempSync(join(tmpdir(), "cvm-transport-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A self-signed certificate for 127.0.0.1 and localhost, made with openssl. */
function selfSigned(): { cert: string; key: string } {
  const cert = join(scratch, "cert.pem");
  const key = join(scratch, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-days",
      "1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}

/** A request to the HTTPS server, trusting its self-signed certificate. */
function https(url: string, ca: Buffer, options: { method?: string; headers?: Record<string, string>; body?: string }) {
  const { origin, pathname, search } = new URL(url);
  return raw(origin, { ...options, path: pathname + search, ca });
}

describe("HTTPS with --tls-cert and --tls-key", () => {
  let t: TestServer;
  let ca: Buffer;
  before(async () => {
    const { cert, key } = selfSigned();
    ca = readFileSync(cert);
    t = await startTestServer({ provider: createFakeProvider(), serverOptions: { tlsCert: cert, tlsKey: key } });
  });
  after(() => t?.close());

  test("the API answers over HTTPS; the session cookie is Secure; HSTS is sent; the terminal runs over wss", async () => {
    assert.match(t.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const created = await https(`${t.url}/api/v1/setup/first-admin`, ca, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "admin@example.com", password, setupCode: t.server.setupCode }),
    });
    assert.equal(created.status, 201, created.body);
    assert.match(String(created.headers["set-cookie"]), /cvm_session=cvm_[^;]+;.*Secure/i);
    assert.match(String(created.headers["strict-transport-security"]), /^max-age=\d+$/);
    const token = JSON.parse(created.body).token as string;
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const environment = await https(`${t.url}/api/v1/environments`, ca, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ name: "tls", image: "debian:12" }),
    });
    assert.equal(environment.status, 201, environment.body);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const state = JSON.parse((await https(`${t.url}/api/v1/environments/tls`, ca, { headers: auth })).body).state;
      if (state === "running") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const url = `${t.url.replace(/^https/, "wss")}/api/v1/environments/tls/terminal?tty=0&command=${encodeURIComponent('["echo"]')}`;
    const echoed = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(url, { ca, headers: { authorization: `Bearer ${token}` } });
      let out = "";
      ws.on("open", () => ws.send(Buffer.concat([Buffer.from([0]), Buffer.from("over tls\n")])));
      ws.on("message", (data, isBinary) => {
        if (isBinary) out += (data as Buffer).subarray(1).toString();
        if (out.includes("over tls")) {
          ws.close();
          resolve(out);
        }
      });
      ws.on("error", reject);
    });
    assert.match(echoed, /over tls/);
  });
});

describe("security headers, /metrics, and a trusted proxy", () => {
  let t: TestServer;
  let plain: TestServer;
  const metricsToken = "metrics-token-for-the-scraper";
  before(async () => {
    const webRoot = join(scratch, "web");
    mkdirSync(webRoot, { recursive: true });
    writeFileSync(join(webRoot, "index.html"), '<!doctype html><script type="module" src="/assets/app.js"></script>');
    t = await startTestServer({
      provider: createFakeProvider(),
      webRoot,
      serverOptions: { metricsToken, proxyTrusted: true, accessUrl: "https://cvm.example.com" },
    });
    plain = await startTestServer({
      provider: createFakeProvider(),
      serverOptions: { metricsListen: "127.0.0.1:0", metricsToken },
    });
  });
  after(async () => {
    await t?.close();
    await plain?.close();
  });

  test("the dashboard: a CSP of its own scripts that forbids framing, Referrer-Policy, nosniff", async () => {
    const page = await fetch(`${t.url}/environments`);
    assert.equal(page.status, 200);
    const csp = page.headers.get("content-security-policy") ?? "";
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
      "object-src 'none'",
      "base-uri 'none'",
    ]) {
      assert.ok(csp.includes(directive), `${directive} in ${csp}`);
    }
    assert.equal(page.headers.get("x-frame-options"), "DENY");
    assert.equal(page.headers.get("referrer-policy"), "same-origin");
    assert.equal(page.headers.get("x-content-type-options"), "nosniff");
    assert.equal((await fetch(`${t.url}/api/v1/setup`)).headers.get("x-content-type-options"), "nosniff");
  });

  test("/metrics needs its token; on an address of its own it is not served on the main one", async () => {
    assert.equal((await fetch(`${t.url}/metrics`)).status, 401);
    const wrong = await fetch(`${t.url}/metrics`, { headers: { authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401);
    const right = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
    assert.equal(right.status, 200);
    assert.match(await right.text(), /cvm_http_requests_total/);

    assert.equal((await fetch(`${plain.url}/metrics`)).status, 404);
    const own = plain.server.metricsUrl;
    assert.ok(own && own !== plain.url);
    const scraped = await fetch(`${own}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
    assert.equal(scraped.status, 200);
    assert.match(await scraped.text(), /cvm_environments/);
  });

  test("with --proxy-trusted: the proxy's host, scheme and client address count; without it, they do not", async () => {
    const behindProxy = {
      "x-forwarded-host": "cvm.example.com",
      "x-forwarded-proto": "https",
      "x-forwarded-for": "198.51.100.9",
    };
    const login = (server: TestServer, headers: Record<string, string>) =>
      fetch(`${server.url}/api/v1/${server === t ? "setup/first-admin" : "auth/login"}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ email: "admin@example.com", password, setupCode: server.server.setupCode }),
      });
    const proxied = await login(t, behindProxy);
    assert.equal(proxied.status, 201);
    const cookie = proxied.headers.get("set-cookie") ?? "";
    assert.match(cookie, /;\s*Secure/i, "HTTPS as the proxy says");
    // The dashboard's write through the proxy: its Origin is the access URL.
    const write = await fetch(`${t.url}/api/v1/tokens`, {
      method: "POST",
      headers: {
        ...behindProxy,
        cookie: cookie.split(";")[0],
        origin: "https://cvm.example.com",
        "content-type": "application/json",
      },
      body: JSON.stringify({ name: "through the proxy" }),
    });
    assert.equal(write.status, 201, await write.text());
    // A name the proxy did not give is still refused.
    assert.equal(
      (await fetch(`${t.url}/api/v1/setup`, { headers: { "x-forwarded-host": "evil.example" } })).status,
      421,
    );

    // Without --proxy-trusted the same headers change nothing: plain HTTP, the peer's address.
    await plain.firstAdmin();
    const direct = await login(plain, { ...behindProxy, "x-forwarded-host": "evil.example" });
    assert.equal(direct.status, 200);
    assert.doesNotMatch(direct.headers.get("set-cookie") ?? "", /Secure/i);
    const wrongPassword = await fetch(`${plain.url}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-for": "198.51.100.9" },
      body: JSON.stringify({ email: "admin@example.com", password: "wrong password" }),
    });
    assert.equal(wrongPassword.status, 401);
    const admin = await plain.firstAdmin();
    const [failure] = (await admin.audit({ action: "auth.login-failed" })).items;
    assert.equal((failure.after as { address: string }).address, "127.0.0.1");
  });
});
