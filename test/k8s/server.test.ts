/**
 * `cvm server --provider kubernetes` against a real API server, through the
 * typed client as a person would use it: a CVM refused by Pod Security shows
 * the admission's own message as the environment's failure, a CVM in an
 * admitting namespace runs on kwok's nodes, and stop/start/delete act on the
 * cluster's objects.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api } from "@kubernetes/client-node";
import type { CvmClient } from "../../src/client/index.js";
import type { Environment, EnvironmentState } from "../../src/core/environment.js";
import { objectNames } from "../../src/providers/kubernetes/index.js";
import { createTestNamespace, type Kube, kubeSuiteTimeoutMs, kubeUnavailable, startKube } from "../harness/kube.js";
import { startTestServer, type TestServer } from "../harness/server.js";

const unavailable = kubeUnavailable();

async function serverFor(
  kube: Kube,
  namespace: string,
  dataDir?: string,
): Promise<{ server: TestServer; admin: CvmClient }> {
  const server = await startTestServer({ provider: "kubernetes", kubeconfig: kube.kubeconfig, namespace, dataDir });
  const fresh = (await server.anonymous().setupStatus()).needsFirstAdmin;
  const admin = await server.firstAdmin();
  // The cluster checks are the doctor's business (and tested there); here CVMs are simply on.
  if (fresh) await admin.updateInfrastructure({ cvmEnabled: true, force: true, limits: { maxCpu: 128 } });
  return { server, admin };
}

async function until(admin: CvmClient, id: string, states: EnvironmentState[], timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  let last: Environment | undefined;
  while (Date.now() < deadline) {
    last = await admin.environment(id);
    if (states.includes(last.state)) return last;
    await sleep(200);
  }
  throw new Error(`environment stayed ${last?.state} (${last?.stateReason ?? ""}); wanted ${states.join(" or ")}`);
}

describe("cvm server with the kubernetes provider", { skip: unavailable, timeout: kubeSuiteTimeoutMs() }, () => {
  let kube: Kube;
  let core: CoreV1Api;

  before(async () => {
    kube = await startKube();
    core = kube.config().makeApiClient(CoreV1Api);
  });

  after(async () => {
    await kube?.stop();
  });

  test("a CVM refused by Pod Security fails with the admission's own message", async () => {
    const namespace = `cvm-srv-baseline-${process.pid}`;
    await createTestNamespace(kube, namespace, { "pod-security.kubernetes.io/enforce": "baseline" });
    const { server, admin } = await serverFor(kube, namespace);
    try {
      const created = await admin.createEnvironment({
        name: "refused",
        image: "debian:12",
        cvm: true,
        cpu: 1,
        memoryGiB: 1,
        diskGiB: 1,
      });
      const failed = await until(admin, created.id, ["failed", "running"]);
      assert.equal(failed.state, "failed");
      assert.match(failed.stateReason ?? "", /violates PodSecurity "baseline:latest"/);
      assert.match(failed.stateReason ?? "", /privileged/);
    } finally {
      await server.close();
    }
  });

  test("a CVM runs on kwok's nodes; stop, start and delete act on the cluster's objects", async () => {
    const namespace = `cvm-srv-${process.pid}`;
    await createTestNamespace(kube, namespace, { "pod-security.kubernetes.io/enforce": "privileged" });
    const { server, admin } = await serverFor(kube, namespace);
    try {
      const created = await admin.createEnvironment({
        name: "dev",
        image: "debian:12",
        cvm: true,
        cpu: 1,
        memoryGiB: 1,
        diskGiB: 1,
      });
      const running = await until(admin, created.id, ["running", "failed"]);
      assert.equal(running.state, "running", running.stateReason);
      const names = objectNames(created.id);
      const pod = await core.readNamespacedPod({ name: names.pod, namespace });
      assert.equal(pod.metadata?.labels?.["dev.cvm/build"], running.buildId);

      await admin.stopEnvironment(created.id);
      await assert.rejects(core.readNamespacedPod({ name: names.pod, namespace }), { code: 404 });
      await core.readNamespacedPersistentVolumeClaim({ name: names.claim, namespace });

      await admin.startEnvironment(created.id);
      assert.equal((await until(admin, created.id, ["running", "failed"])).state, "running");

      await admin.deleteEnvironment(created.id);
      await assert.rejects(core.readNamespacedPod({ name: names.pod, namespace }), { code: 404 });
      await assert.rejects(core.readNamespacedSecret({ name: names.secret, namespace }), { code: 404 });
    } finally {
      await server.close();
    }
  });

  test("a server restarted mid-build resumes the build with the Pod it finds", async () => {
    const namespace = `cvm-srv-restart-${process.pid}`;
    await createTestNamespace(kube, namespace, { "pod-security.kubernetes.io/enforce": "privileged" });
    const dataDir = mkdtempSync(join(tmpdir(), "cvm-k8s-server-"));
    const first = await serverFor(kube, namespace, dataDir);
    // More CPU than any node has: the Pod waits for the scheduler, mid-build.
    const created = await first.admin.createEnvironment({ name: "big", image: "debian:12", cvm: true, cpu: 100 });
    const names = objectNames(created.id);
    const deadline = Date.now() + 60_000;
    let waiting = false;
    while (!waiting && Date.now() < deadline) {
      for await (const line of first.admin.logs(created.id)) {
        if (!("end" in line) && line.text.startsWith("not scheduled:")) waiting = true;
      }
      if (!waiting) await sleep(200);
    }
    assert.ok(waiting, "the build waits for the scheduler");
    const before = await core.readNamespacedPod({ name: names.pod, namespace });
    await first.server.close();

    const second = await serverFor(kube, namespace, dataDir);
    try {
      await core.createNode({
        body: {
          metadata: {
            name: `kwok-big-${process.pid}`,
            annotations: { "kwok.x-k8s.io/node": "fake" },
            labels: { "kubernetes.io/hostname": `kwok-big-${process.pid}`, type: "kwok" },
          },
          status: {
            allocatable: { cpu: "128", memory: "512Gi", pods: "110" },
            capacity: { cpu: "128", memory: "512Gi", pods: "110" },
          },
        },
      });
      const running = await until(second.admin, created.id, ["running", "failed"]);
      assert.equal(running.state, "running", running.stateReason);
      assert.equal(running.buildId, created.buildId, "the same build, resumed");
      const after = await core.readNamespacedPod({ name: names.pod, namespace });
      assert.equal(after.metadata?.uid, before.metadata?.uid, "the same Pod, adopted");
      await second.admin.deleteEnvironment(created.id);
    } finally {
      await second.server.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
