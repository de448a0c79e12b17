import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { credentialsFrom, podEnvironment, SupervisorReporter } from "./supervisor.js";

test("the Pod's variables and files describe the environment; the password comes from the Secret's file", () => {
  const dir = mkdtempSync(join(tmpdir(), "cvm-supervisor-env-"));
  writeFileSync(join(dir, "token"), "tok\n");
  writeFileSync(
    join(dir, "auth"),
    JSON.stringify({ auths: { "registry.example.com": { username: "ada", password: "pw", auth: "x" } } }),
  );
  const pod = podEnvironment({
    CVM_ENVIRONMENT_ID: "env_1",
    CVM_ENVIRONMENT_NAME: "dev",
    CVM_IMAGE: "registry.example.com/dev:1",
    CVM_RUNTIME: "auto",
    CVM_CPU_LIMIT_MILLIS: "1500",
    CVM_MEMORY_LIMIT_MIB: "2048",
    CVM_REPORT_TOKEN_FILE: join(dir, "token"),
    CVM_REGISTRY_AUTH_FILE: join(dir, "auth"),
    CVM_DISCARD_DOCKER_DATA: "true",
    CVM_TUN_DEVICE: "false",
  });
  assert.equal(pod.environment.cpu, 1.5);
  assert.equal(pod.environment.memoryGiB, 2);
  assert.equal(pod.environment.runtime, "userns");
  assert.equal(pod.reportToken, "tok");
  assert.deepEqual(pod.credentials, { username: "ada", password: "pw" });
  assert.equal(pod.discardDockerData, true);
  assert.equal(pod.settings.fuseDevice, true, "devices are on unless the Pod says otherwise");
  assert.equal(pod.settings.tunDevice, false);
  assert.equal(credentialsFrom(JSON.stringify({ auths: {} })), undefined);
  assert.throws(() => podEnvironment({}), /CVM_ENVIRONMENT_ID is not set/);
});

test("the reporter delivers lines and states in order, with the environment's token", async () => {
  const received: { auth?: string; body: unknown }[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      received.push({ auth: req.headers.authorization, body: JSON.parse(body) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const reporter = new SupervisorReporter(url, "env_1", "tok", () => {});
  reporter.line("one");
  reporter.line("two");
  reporter.send({ state: "creating" });
  reporter.line("three");
  await reporter.drain();
  server.close();
  assert.ok(received.every((r) => r.auth === "Bearer tok"));
  const flat = received.flatMap((r) => {
    const body = r.body as { lines?: string[]; state?: string };
    return [...(body.lines ?? []), ...(body.state ? [`state:${body.state}`] : [])];
  });
  assert.deepEqual(flat, ["one", "two", "state:creating", "three"]);
});
