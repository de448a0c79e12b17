import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { dashboard } from "./dashboard.js";

const root = mkdtempSync(join(tmpdir(), "cvm-dashboard-test-"));
const dist = join(root, "dist");
mkdirSync(join(dist, "assets"), { recursive: true });
const indexHtml = '<!doctype html><div id="root"></div><script type="module" src="/assets/index-abc123.js"></script>';
const script = `console.log(${JSON.stringify("x".repeat(4000))});`;
writeFileSync(join(dist, "index.html"), indexHtml);
writeFileSync(join(dist, "assets", "index-abc123.js"), script);
writeFileSync(join(root, "secret.txt"), "not for the web");
after(() => rmSync(root, { recursive: true, force: true }));

const app = dashboard({ webRoot: dist, buildWhenMissing: false });

test("the index answers / and every client route, revalidated on each visit", async () => {
  for (const path of ["/", "/environments", "/environments/env_123/terminal", "/manage/users?x=1"]) {
    const response = await app.request(path);
    assert.equal(response.status, 200, path);
    assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
    assert.equal(response.headers.get("cache-control"), "no-cache");
    assert.equal(await response.text(), indexHtml);
  }
});

test("hashed assets are cached for a year, gzipped when asked, and revalidate by etag", async () => {
  const plain = await app.request("/assets/index-abc123.js");
  assert.equal(plain.status, 200);
  assert.match(plain.headers.get("content-type") ?? "", /^text\/javascript/);
  assert.equal(plain.headers.get("cache-control"), "public, max-age=31536000, immutable");
  assert.equal(await plain.text(), script);

  const gzipped = await app.request("/assets/index-abc123.js", { headers: { "accept-encoding": "gzip, br" } });
  assert.equal(gzipped.headers.get("content-encoding"), "gzip");
  const body = Buffer.from(await gzipped.arrayBuffer());
  assert.ok(body.length < script.length / 4, "compressed");
  assert.equal(gunzipSync(body).toString(), script);

  const etag = plain.headers.get("etag");
  assert.ok(etag);
  const again = await app.request("/assets/index-abc123.js", { headers: { "if-none-match": etag } });
  assert.equal(again.status, 304);
});

test("a missing file is a 404, and no path leaves the dashboard's directory", async () => {
  assert.equal((await app.request("/assets/missing-123.js")).status, 404);
  assert.equal((await app.request("/favicon.ico")).status, 404);
  for (const path of ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt"]) {
    const response = await app.request(path);
    assert.notEqual(await response.text(), "not for the web", path);
  }
});

test("without a build, the page says how to make one", async () => {
  const unbuilt = dashboard({ webRoot: join(root, "nowhere"), buildWhenMissing: false });
  const response = await unbuilt.request("/environments");
  assert.equal(response.status, 503);
  assert.match(await response.text(), /npm run build:web/);
});
