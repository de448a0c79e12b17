import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { podEnvironment } from "./pod-agent.js";

test("the Pod's variables and files describe the environment; the password comes from the Secret's file", () => {
  const dir = mkdtempSync(join(tmpdir(), "cvm-supervisor-env-"));
  try {
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
    });
    assert.equal(pod.environment.cpu, 1.5);
    assert.equal(pod.environment.memoryGiB, 2);
    assert.equal(pod.environment.runtime, "userns");
    assert.equal(pod.reportToken, "tok");
    assert.deepEqual(pod.credentials, { username: "ada", password: "pw" });
    assert.equal(pod.discardDockerData, true);
    // No server URL: the agent sends no reports.
    assert.equal(pod.reportUrl, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("outside a Pod the agent refuses to start, naming the missing variable", () => {
  assert.throws(() => podEnvironment({}), /CVM_ENVIRONMENT_ID is not set/);
});

test("what the Pod leaves out falls back to the contract's defaults", () => {
  const pod = podEnvironment({ CVM_ENVIRONMENT_ID: "env_1", CVM_ENVIRONMENT_NAME: "dev", CVM_IMAGE: "debian:12" });
  assert.equal(pod.environment.cpu, 2);
  assert.equal(pod.environment.memoryGiB, 4);
  assert.equal(pod.settings.runtime, "auto");
  assert.equal(pod.stopTimeoutSeconds, 30);
  assert.equal(pod.homeDir, "/var/lib/cvm/volumes/home");
  assert.equal(pod.readyFile, "/var/lib/cvm/runtime/ready");
  assert.equal(pod.credentials, undefined);
});
