import assert from "node:assert/strict";
import { test } from "node:test";
import { Hono } from "hono";
import { pino } from "pino";
import { CvmError } from "../core/errors.js";
import type { User } from "../core/user.js";
import { createApp } from "./app.js";
import { type Mismatch, ResponseChecker, responseConformance } from "./conformance.js";
import { apiPrefix } from "./contract.js";
import { errorHandler, notFoundHandler } from "./errors.js";
import { ndjsonResponse } from "./ndjson.js";
import { openApiDocument } from "./openapi.js";
import { type ApiDeps, ApiRoutes, type AppEnv } from "./routes.js";
import { logStreamItemSchema, userSchema } from "./schemas.js";

const logger = pino({ level: "silent" });
const ada: User = {
  id: "usr_1",
  email: "ada@example.com",
  name: "Ada",
  role: "member",
  active: true,
  createdAt: "2024-01-01T00:00:00.000Z",
};

/** A small API with the real route table, document and middleware, whose handlers answer what a test says. */
function apiAnswering(answers: { user: () => unknown; lines: () => unknown[] }) {
  const mismatches: Mismatch[] = [];
  const api = new Hono<AppEnv>();
  const routes = new ApiRoutes(api, { logger } as ApiDeps);
  routes.add(
    { method: "get", path: "/users/:id", summary: "A user", tag: "users", auth: false, response: userSchema },
    (c) => {
      if (c.req.param("id") === "busy") throw new CvmError("CONFLICT", "busy");
      if (c.req.param("id") === "broken") throw new Error("a bug");
      return c.json(answers.user() as User);
    },
  );
  routes.add(
    {
      method: "get",
      path: "/logs",
      summary: "A log",
      tag: "logs",
      auth: false,
      response: { ndjson: logStreamItemSchema },
    },
    () =>
      ndjsonResponse(
        async (write) => {
          for (const line of answers.lines()) write(line);
        },
        new AbortController().signal,
        logger,
      ),
  );
  api.onError(errorHandler(logger));
  api.all("*", notFoundHandler);
  const app = new Hono();
  app.use(
    "/api/*",
    responseConformance(
      () => openApiDocument(routes.docs, "test"),
      (mismatch) => mismatches.push(mismatch),
    ),
  );
  app.route(apiPrefix, api);
  const get = (path: string) => app.request(`${apiPrefix}${path}`);
  return { get, mismatches };
}

test("an answer that matches its documented schema passes unchanged", async () => {
  const { get, mismatches } = apiAnswering({ user: () => ada, lines: () => [] });
  const response = await get("/users/usr_1");
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), ada);
  assert.deepEqual(mismatches, []);
});

test("an answer that breaks its schema becomes a 500 naming the field, and is reported", async () => {
  for (const [broken, field] of [
    [{ ...ada, role: "owner" }, "role"],
    [{ ...ada, active: undefined }, "active"],
    [{ ...ada, passwordHash: "scrypt$..." }, "passwordHash"],
  ] as const) {
    const { get, mismatches } = apiAnswering({ user: () => broken, lines: () => [] });
    const response = await get("/users/usr_1");
    assert.equal(response.status, 500, field);
    const body = (await response.json()) as { message: string; detail: string };
    assert.match(body.message, /does not match the OpenAPI document/);
    assert.match(body.detail, new RegExp(`^GET /api/v1/users/\\{id\\} 200: .*${field}`));
    assert.equal(mismatches.length, 1, field);
    assert.equal(mismatches[0], body.detail);
  }
});

test("an error status the route does not document is a mismatch; documented ones and 5xx pass", async () => {
  const { get, mismatches } = apiAnswering({ user: () => ada, lines: () => [] });
  const conflict = await get("/users/busy");
  assert.equal(conflict.status, 500);
  assert.match(((await conflict.json()) as { detail: string }).detail, /status 409 is not documented.*200, 404/);
  // A path parameter implies a 404, and an internal error falls to `default`.
  assert.equal((await get("/nothing/here")).status, 404);
  assert.equal((await get("/users/broken")).status, 500);
  assert.equal(mismatches.length, 1);
});

test("a stream is checked line by line and cut at the first line that breaks its schema", async () => {
  const good = { buildId: "bld_1", seq: 1, at: "2024-01-01T00:00:00.000Z", text: "pulling" };
  const { get, mismatches } = apiAnswering({
    user: () => ada,
    lines: () => [good, { ...good, seq: "2" }, { end: true, outcome: "running" }],
  });
  const response = await get("/logs");
  assert.equal(response.status, 200);
  await assert.rejects(response.text(), /seq/);
  assert.equal(mismatches.length, 1);
  assert.match(mismatches[0], /^GET \/api\/v1\/logs 200: /);

  const fine = apiAnswering({ user: () => ada, lines: () => [good, { end: true, outcome: "running" }] });
  assert.equal((await (await fine.get("/logs")).text()).split("\n").filter(Boolean).length, 2);
  assert.deepEqual(fine.mismatches, []);
});

test("every answer the real API documents can be checked", async () => {
  const noop = { inc() {}, observe() {} };
  const site = { accessUrl: new URL("http://localhost"), otherHosts: [], proxyTrusted: false };
  const deps = { logger, site, metrics: { httpRequests: noop, httpDuration: noop } } as unknown as ApiDeps;
  const { app } = createApp(deps, { webRoot: "/nonexistent", onMismatch: assert.fail });
  const document = await (await app.request(`${apiPrefix}/openapi.json`)).json();
  const checker = new ResponseChecker(document);
  let checked = 0;
  for (const [path, operations] of Object.entries(document.paths as Record<string, Record<string, unknown>>)) {
    for (const [method, operation] of Object.entries(operations)) {
      for (const [status, answer] of Object.entries((operation as { responses: Record<string, unknown> }).responses)) {
        const content = (answer as { content?: Record<string, unknown> }).content ?? { "": {} };
        for (const type of Object.keys(content)) {
          const found = checker.schemaFor(method, path, status === "default" ? 500 : Number(status), type);
          assert.ok(!("mismatch" in found), `${method} ${path} ${status} ${type}`);
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 100, `only ${checked} answers`);
});
