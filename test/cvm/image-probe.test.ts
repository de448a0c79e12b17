/**
 * `cvm supervisor probe`, the doctor's trial Pod's command, on this machine's
 * real engine binaries and the test registry: it starts the supervisor's own
 * engine from the Pod's variables, says which runtimes it has and whether the
 * one asked for is among them, asks the registry for each image's manifest
 * (a digest, or the registry's answer), writes the verdict where the kubelet
 * reads a termination message, and stops the engine again. In a real Pod it
 * runs in test/k8s/real-node.test.ts.
 */

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { enginePaths } from "../../src/supervisor/engine.js";
import { runImageProbe } from "../../src/supervisor/image-probe.js";
import { decodeProbeVerdict, podVariables as v } from "../../src/supervisor/pod-contract.js";
import { cvmImages, missingImages, scratchDataDir } from "../harness/cvm.js";
import { removeDataDir } from "../harness/server.js";

const scratch = mkdtempSync(join(tmpdir(), "cvm-probe-"));
const registry = process.env.CVM_TEST_REGISTRY ?? "127.0.0.1:5000";

/** The variables a trial Pod's spec gives its container (pod-spec.ts via pod-contract.ts). */
const podEnv = (runtime: string) => ({
  [v.environmentId]: "trial-probe",
  [v.environmentName]: "cvm-trial",
  [v.image]: "cvm-trial",
  [v.runtime]: runtime,
  [v.runtimeDir]: scratchDataDir,
  [v.insecureRegistries]: registry,
  [v.registryAuthFile]: join(scratch, "no-credentials"),
});

after(() => {
  removeDataDir(scratchDataDir);
  rmSync(scratch, { recursive: true, force: true });
});

test("the probe starts the engine, reaches an image's manifest, names a missing tag, and stops the engine", {
  skip: missingImages,
  timeout: 180_000,
}, async () => {
  const image = cvmImages()?.plain ?? "";
  const missing = `${registry}/cvm-test/no-such-image:1`;
  const out = join(scratch, "termination-log");
  const verdict = await runImageProbe([image, missing], { out, env: podEnv("auto"), logLevel: "warn" });
  assert.equal(verdict.engine, undefined, verdict.engine);
  assert.ok((verdict.engineMs ?? -1) >= 0, "the engine's start is timed");
  assert.ok(verdict.runtimes?.includes("runc"), `runtimes: ${verdict.runtimes}`);
  assert.equal(verdict.runtime, undefined, "auto is met by any engine");
  assert.equal(verdict.images[0].image, image);
  assert.match(verdict.images[0].digest ?? "", /^sha256:[0-9a-f]{64}$/);
  assert.equal(verdict.images[1].kind, "not-found");
  assert.match(verdict.images[1].failure ?? "", /manifest unknown|not found/i);
  // What the kubelet would keep: the same verdict, read back by the doctor's judge.
  assert.deepEqual(decodeProbeVerdict(readFileSync(out, "utf8")), verdict);
  assert.ok(!existsSync(enginePaths(scratchDataDir).socket), "the engine is stopped again");
});

test("sysbox asked where the engine has no sysbox-runc: the probe says so", {
  skip: missingImages,
  timeout: 180_000,
}, async () => {
  const verdict = await runImageProbe([], {
    out: join(scratch, "termination-log-sysbox"),
    env: podEnv("sysbox"),
    logLevel: "warn",
  });
  assert.equal(verdict.engine, undefined, verdict.engine);
  assert.match(verdict.runtime ?? "", /set to sysbox, but this node's engine has no sysbox-runc/);
  assert.deepEqual(verdict.images, []);
});
