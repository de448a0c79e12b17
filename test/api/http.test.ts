/** The HTTP surface itself: health, metrics, the OpenAPI document, error shapes for bad input and unknown routes. */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { CvmClient } from "../../src/client/index.js";
import { startTestServer, type TestServer } from "../harness/server.js";

/** Every route the typed client calls, plus the terminal; the document must list each one. */
const expectedRoutes = [
  "get /api/v1/setup",
  "post /api/v1/setup/first-admin",
  "post /api/v1/auth/login",
  "post /api/v1/auth/logout",
  "get /api/v1/users/me",
  "get /api/v1/users",
  "post /api/v1/users",
  "patch /api/v1/users/{id}",
  "get /api/v1/tokens",
  "post /api/v1/tokens",
  "delete /api/v1/tokens/{id}",
  "get /api/v1/settings/infrastructure",
  "put /api/v1/settings/infrastructure",
  "get /api/v1/settings/infrastructure/checks",
  "get /api/v1/settings/infrastructure/checks/progress",
  "get /api/v1/audit",
  "post /api/v1/admin/reconcile",
  "get /api/v1/pools",
  "put /api/v1/pools",
  "get /api/v1/admin/backup",
  "get /api/v1/environments",
  "post /api/v1/environments",
  "get /api/v1/environments/{ref}",
  "post /api/v1/environments/{ref}/start",
  "post /api/v1/environments/{ref}/stop",
  "post /api/v1/environments/{ref}/rebuild",
  "delete /api/v1/environments/{ref}",
  "get /api/v1/environments/{ref}/builds",
  "get /api/v1/environments/{ref}/logs",
  "get /api/v1/environments/{ref}/terminal",
  "get /api/v1/environments/{ref}/ssh",
  "get /api/v1/ssh/host-key",
  "get /api/v1/environments/{ref}/account",
  "get /api/v1/environments/{ref}/usage",
  "get /api/v1/environments/{ref}/idle",
  "put /api/v1/environments/{ref}/idle",
  "get /api/v1/environments/{ref}/ports",
  "put /api/v1/environments/{ref}/ports/{port}",
  "get /api/v1/environments/{ref}/ports/{port}/open",
  "get /api/v1/environments/{ref}/ports/{port}/connect",
  "get /api/v1/events",
  "post /api/v1/environments/{id}/supervisor-report",
  "get /api/v1/openapi.json",
  "get /api/v1/buildinfo",
];

describe("http surface (sqlite)", () => {
  let t: TestServer;
  let admin: CvmClient;
  before(async () => {
    t = await startTestServer("sqlite");
    admin = await t.firstAdmin();
  });
  after(() => t?.close());

  test("/healthz answers", async () => {
    const response = await fetch(`${t.url}/healthz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { ok: true });
  });

  test("/api/v1/openapi.json is OpenAPI 3.1 and lists every route, with request schemas from zod", async () => {
    const response = await fetch(`${t.url}/api/v1/openapi.json`);
    assert.equal(response.status, 200);
    const document = (await response.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>>;
    };
    assert.equal(document.openapi, "3.1.0");
    const listed = Object.entries(document.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    assert.deepEqual([...listed].sort(), [...expectedRoutes].sort());
    const create = document.paths["/api/v1/environments"].post.requestBody?.content["application/json"].schema as {
      properties: Record<string, unknown>;
      required: string[];
    };
    assert.deepEqual(Object.keys(create.properties).sort(), [
      "cpu",
      "cvm",
      "diskGiB",
      "image",
      "memoryGiB",
      "name",
      "registryCredentials",
    ]);
    assert.deepEqual(create.required.sort(), ["image", "name"]);
  });

  test("the document lists each route's error statuses, each with the one error body", async () => {
    const document = (await (await fetch(`${t.url}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
    };
    const statuses = (path: string, method: string) => Object.keys(document.paths[path][method].responses);
    // Every route may meet a foreign Host (421); a write, another site's page (403); a body, the wrong type (415).
    assert.deepEqual(statuses("/api/v1/environments", "post"), [
      "201",
      "400",
      "401",
      "403",
      "409",
      "413",
      "415",
      "421",
      "default",
    ]);
    assert.deepEqual(statuses("/api/v1/users", "get"), ["200", "400", "401", "403", "421", "default"]);
    assert.deepEqual(statuses("/api/v1/environments/{ref}", "get"), ["200", "401", "404", "421", "default"]);
    assert.deepEqual(statuses("/api/v1/setup", "get"), ["200", "421", "default"]);
    assert.deepEqual(statuses("/api/v1/auth/login", "post"), [
      "200",
      "400",
      "401",
      "403",
      "413",
      "415",
      "421",
      "429",
      "default",
    ]);
    const forbidden = document.paths["/api/v1/users"].get.responses["403"].content?.["application/json"] as {
      schema: { properties: Record<string, unknown>; required: string[] };
    };
    assert.deepEqual(Object.keys(forbidden.schema.properties), ["message", "detail", "validations"]);
    assert.deepEqual(forbidden.schema.required, ["message"]);
  });

  test("/metrics is Prometheus text with requests, environments by state and build durations", async () => {
    await admin.listEnvironments();
    const response = await fetch(`${t.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /text\/plain/);
    const text = await response.text();
    assert.match(text, /# TYPE cvm_http_requests_total counter/);
    assert.match(text, /cvm_http_requests_total\{method="GET",route="\/api\/v1\/environments",status="200"\} \d+/);
    assert.match(text, /cvm_environments\{state="running"\} 0/);
    assert.match(text, /# TYPE cvm_build_duration_seconds histogram/);
  });

  test("malformed JSON is a 400 naming the body, never a 500", async () => {
    const response = await fetch(`${t.url}/api/v1/environments`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" },
      body: '{"name": "dev", "image": ',
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { message: string; validations: { field: string }[] };
    assert.equal(body.validations[0].field, "body");
    assert.match(body.message, /JSON/);
    // A JSON value of the wrong shape is a 400 too.
    const array = await fetch(`${t.url}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "[1,2]",
    });
    assert.equal(array.status, 400);
  });

  test("an unknown route under /api is a 404 in the error shape; so is an unknown field", async () => {
    for (const [method, path] of [
      ["GET", "/api/v1/nothing-here"],
      ["POST", "/api/v1/environments/x/explode"],
      ["GET", "/api/v2/environments"],
    ]) {
      const response = await fetch(`${t.url}${path}`, { method, headers: { authorization: `Bearer ${admin.token}` } });
      assert.equal(response.status, 404, path);
      const body = (await response.json()) as { message: string };
      assert.match(body.message, /No such route/);
    }
    const response = await fetch(`${t.url}/api/v1/tokens`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "x", ttl: 3 }),
    });
    assert.equal(response.status, 400);
    assert.deepEqual(((await response.json()) as { validations: unknown }).validations, [
      { field: "ttl", detail: "is not a known field" },
    ]);
  });

  test("an oversized body is a 413", async () => {
    const response = await fetch(`${t.url}/api/v1/tokens`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "x".repeat(2 * 1024 * 1024) }),
    });
    assert.equal(response.status, 413);
    assert.match(((await response.json()) as { message: string }).message, /limited/);
  });
});
