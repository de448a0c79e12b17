import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { supervisorReportUrl } from "./pod-contract.js";
import { SupervisorReporter } from "./reporter.js";

test("the reporter delivers lines and states in order, to the environment's report URL, with its token", async () => {
  const received: { url?: string; auth?: string; body: unknown }[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      received.push({ url: req.url, auth: req.headers.authorization, body: JSON.parse(body) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const reporter = new SupervisorReporter(supervisorReportUrl(base, "env_1"), "tok", () => {});
  reporter.line("one");
  reporter.line("two");
  reporter.send({ state: "creating" });
  reporter.line("three");
  await reporter.drain();
  server.close();
  assert.ok(received.every((r) => r.auth === "Bearer tok"));
  assert.ok(received.every((r) => r.url === "/api/v1/environments/env_1/supervisor-report"));
  const flat = received.flatMap((r) => {
    const body = r.body as { lines?: string[]; state?: string };
    return [...(body.lines ?? []), ...(body.state ? [`state:${body.state}`] : [])];
  });
  assert.deepEqual(flat, ["one", "two", "state:creating", "three"]);
});
