/**
 * The API fuzzed from its own OpenAPI document with schemathesis (issue 11:
 * kept in CI, bounded), once as a site admin and once as a member: no answer
 * may be a 5xx, have an undocumented status or content type, or break its
 * documented schema. The server checks every answer against the document
 * itself too (src/api/conformance.ts) and the test counts what it hears.
 * The provider is the fake: the fuzz is after the API's edges, and thousands
 * of environments from random image names have no engine to go to.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { CvmClient } from "../../src/client/index.js";
import { createFakeProvider } from "../../src/providers/fake/index.js";
import { ensureSchemathesis } from "../harness/schemathesis.js";
import { startTestServer, type TestServer } from "../harness/server.js";

/** Test cases per operation and phase; with two roles, a few thousand requests in a few minutes. */
const maxExamples = Number(process.env.CVM_FUZZ_EXAMPLES ?? 25);
const checks = [
  "not_a_server_error",
  "status_code_conformance",
  "content_type_conformance",
  "response_headers_conformance",
  "response_schema_conformance",
].join(",");

interface RunResult {
  code: number;
  output: string;
}

/** Runs schemathesis in `cwd`, where it keeps its cache (.schemathesis), never the checkout. */
function schemathesis(bin: string, args: string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      bin,
      args,
      { cwd, timeout: 600_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: "1", COLUMNS: "200" } },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, output: stdout + stderr }),
    );
  });
}

/** Requests the server answered, by status class, from its own /metrics. */
async function answered(url: string): Promise<{ total: number; serverErrors: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  let serverErrors = 0;
  for (const match of text.matchAll(/^cvm_http_requests_total\{[^}]*status="(\d+)"[^}]*\} (\d+)/gm)) {
    total += Number(match[2]);
    if (match[1].startsWith("5")) serverErrors += Number(match[2]);
  }
  return { total, serverErrors };
}

describe("schemathesis against the OpenAPI document", { timeout: 900_000 }, () => {
  let t: TestServer;
  let bin: string;
  let admin: CvmClient;
  let member: CvmClient;
  const mismatches: string[] = [];
  const reports = mkdtempSync(join(tmpdir(), "cvm-fuzz-"));

  before(async () => {
    bin = await ensureSchemathesis();
    // A dashboard to serve, as in production: paths the fuzz sends outside /api are its pages.
    const webRoot = join(reports, "web");
    mkdirSync(webRoot);
    writeFileSync(join(webRoot, "index.html"), "<!doctype html><title>cvm</title>");
    t = await startTestServer({
      provider: createFakeProvider(),
      webRoot,
      serverOptions: { onMismatch: (mismatch) => mismatches.push(mismatch) },
    });
    admin = await t.firstAdmin();
    member = await t.userWithRole(admin, "member");
    // Something to find: an environment each, so refs and ids are not all unknown.
    await admin.createEnvironment({ name: "dev", image: "debian:12" });
    await member.createEnvironment({ name: "dev", image: "debian:12" });
  });
  after(async () => {
    await t?.close();
    rmSync(reports, { recursive: true, force: true });
  });

  for (const role of ["admin", "member"] as const) {
    test(`as a ${role}: no 5xx, no undocumented status, type or header, no answer breaking its schema`, async () => {
      const client = role === "admin" ? admin : member;
      const before = await answered(t.url);
      const junit = join(reports, `${role}.xml`);
      const result = await schemathesis(
        bin,
        [
          "run",
          `${t.url}/api/v1/openapi.json`,
          "--url",
          t.url,
          "--header",
          `Authorization: Bearer ${client.token}`,
          "--checks",
          checks,
          "--phases",
          "examples,coverage,fuzzing",
          "--max-examples",
          String(maxExamples),
          // One worker: hypothesis on this Python trips over its own AST cache with two threads.
          "--workers",
          "1",
          "--seed",
          "1011",
          "--request-timeout",
          "30",
          // Signing out would end the run's own session, and /events never ends by design; both are tested elsewhere.
          "--exclude-path",
          "/api/v1/auth/logout",
          "--exclude-path",
          "/api/v1/events",
          "--suppress-health-check",
          "all",
          "--report",
          "junit",
          "--report-junit-path",
          junit,
        ],
        reports,
      );
      const after = await answered(t.url);
      const requests = after.total - before.total;
      const serverErrors = after.serverErrors - before.serverErrors;
      const summary = result.output.split("\n").slice(-40).join("\n");
      console.log(
        `fuzz as ${role}: ${requests} requests, ${serverErrors} answered 5xx, ${mismatches.length} mismatches`,
      );
      assert.deepEqual(mismatches, [], "the server's own conformance check");
      assert.equal(serverErrors, 0, summary);
      assert.equal(result.code, 0, `schemathesis found problems:\n${result.output.slice(-20_000)}`);
      assert.ok(requests > 500, `only ${requests} requests: ${summary}`);
      assert.match(readFileSync(junit, "utf8"), /<testsuite/);
    });
  }
});
