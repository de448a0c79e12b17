/**
 * Two cvm servers on one PostgreSQL database, as replicas run: sessions work
 * on both, a build run by one streams its log through the other (the store
 * poll, not the in-process bus), and concurrent starts through both replicas
 * still give exactly one success (the store's compare-and-set).
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type ApiError, CvmClient } from "../../src/client/index.js";
import { type FreshDatabase, freshPostgresUrl } from "../../src/store/testing.js";
import { startTestServer, type TestServer } from "../harness/server.js";

const image = process.env.CVM_TEST_IMAGE_PLAIN;

describe("two replicas on one PostgreSQL database", { skip: image ? false : "CVM_TEST_IMAGE_PLAIN is not set" }, () => {
  let database: FreshDatabase;
  const servers: TestServer[] = [];
  let a: CvmClient;
  let b: CvmClient;

  before(async () => {
    database = await freshPostgresUrl();
    for (let i = 0; i < 2; i++) servers.push(await startTestServer({ store: { postgresUrl: database.url } }));
    const admin = await servers[0].firstAdmin();
    a = await servers[0].userWithRole(admin, "member", "member@example.com");
    // The session made on one replica is good on the other.
    b = new CvmClient({ baseUrl: servers[1].url, token: a.token });
  });

  after(async () => {
    await a?.deleteEnvironment("shared").catch(() => undefined);
    for (const server of servers) await server.close();
    await database?.drop();
  });

  test("a build run by one replica streams its log through the other until it ends", async () => {
    assert.equal((await b.whoami()).email, "member@example.com");
    await a.createEnvironment({ name: "shared", image: image as string });
    const lines: string[] = [];
    let outcome: string | undefined;
    for await (const item of b.logs("shared", { follow: true, signal: AbortSignal.timeout(120_000) })) {
      if ("end" in item) outcome = item.outcome;
      else lines.push(item.text);
    }
    assert.equal(outcome, "running", lines.join("\n"));
    assert.ok(lines.some((l) => l.includes("→ running")));
    assert.equal((await b.environment("shared")).state, "running");
  });

  test("concurrent starts through both replicas: exactly one succeeds", async () => {
    await b.stopEnvironment("shared");
    const attempts = await Promise.allSettled([a, b, a, b].map((client) => client.startEnvironment("shared")));
    const ok = attempts.filter((x) => x.status === "fulfilled");
    assert.equal(ok.length, 1, JSON.stringify(attempts.map((x) => x.status)));
    for (const refused of attempts.filter((x) => x.status === "rejected") as PromiseRejectedResult[]) {
      assert.equal((refused.reason as ApiError).status, 409);
    }
    const deadline = Date.now() + 60_000;
    while ((await a.environment("shared")).state !== "running" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal((await a.environment("shared")).state, "running");
    assert.equal((await a.builds("shared")).items.length, 2);
  });

  test("GET /events on one replica sees changes made through the other", async () => {
    const controller = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const event of b.events(controller.signal)) {
        if (event.type === "environment" && event.environment.name === "shared") seen.push(event.environment.state);
        if (seen.includes("stopped")) return;
      }
    })().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    await a.stopEnvironment("shared");
    await Promise.race([reading, new Promise((r) => setTimeout(r, 15_000))]);
    controller.abort();
    assert.equal(seen.at(-1), "stopped", seen.join(", "));
  });
});
