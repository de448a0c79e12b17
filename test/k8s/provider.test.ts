/**
 * The kubernetes provider against a real API server (etcd, kube-apiserver,
 * controller manager and scheduler built from the pinned release, kwok's
 * simulated nodes): the objects a CVM is made of, the real admission chain
 * admitting or refusing them, the actions, and a restarted server adopting
 * a Pod mid-build.
 */

import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { pino } from "pino";
import type { Environment, RegistryCredentials } from "../../src/core/environment.js";
import { CvmError } from "../../src/core/errors.js";
import {
  createKubernetesProvider,
  type KubernetesProvider,
  objectNames,
} from "../../src/providers/kubernetes/index.js";
import { newId } from "../../src/store/ids.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { createTestNamespace, type Kube, kubeSuiteTimeoutMs, kubeUnavailable, startKube } from "../harness/kube.js";

const unavailable = kubeUnavailable();
const logger = pino({ level: process.env.CVM_TEST_LOG_LEVEL ?? "silent" });
const cvmSettings = fixtures.settings({ cvmEnabled: true });

function environment(overrides: Partial<Environment> = {}): Environment {
  const id = newId("env");
  return fixtures.environment({
    id,
    name: `k8s-${id.slice(-6)}`,
    image: "127.0.0.1:5000/cvm-test/ubuntu-systemd-docker:latest",
    cvm: true,
    buildId: newId("bld"),
    ...overrides,
  });
}

function recorder(credentials?: RegistryCredentials, settings = cvmSettings) {
  const controller = new AbortController();
  const context = fixtures.recordingContext({ credentials, settings, signal: controller.signal });
  return { context, lines: context.lines, states: context.states, controller };
}

describe("kubernetes provider on a real API server", { skip: unavailable, timeout: kubeSuiteTimeoutMs() }, () => {
  let kube: Kube;
  let core: CoreV1Api;
  let provider: KubernetesProvider;
  const namespace = `cvm-k8s-${process.pid}`;
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-k8s-"));

  const open = () =>
    createKubernetesProvider({
      kind: "kubernetes",
      kubeconfig: kube.kubeconfig,
      namespace,
      dataDir,
      logger,
      serverUrl: "http://127.0.0.1:7080",
      stopTimeoutSeconds: 5,
      buildTimeoutSeconds: 120,
    });

  const pod = async (id: string): Promise<V1Pod | undefined> =>
    core.readNamespacedPod({ name: objectNames(id).pod, namespace }).catch(() => undefined);
  const claimExists = async (id: string) =>
    core
      .readNamespacedPersistentVolumeClaim({ name: objectNames(id).claim, namespace })
      .then((claim) => !claim.metadata?.deletionTimestamp)
      .catch(() => false);
  const secretExists = async (id: string) =>
    core
      .readNamespacedSecret({ name: objectNames(id).secret, namespace })
      .then(() => true)
      .catch(() => false);

  before(async () => {
    kube = await startKube();
    core = kube.config().makeApiClient(CoreV1Api);
    await createTestNamespace(kube, namespace, { "pod-security.kubernetes.io/enforce": "privileged" });
    provider = await open();
  });

  after(async () => {
    await provider?.close();
    await kube?.stop();
  });

  test("creating a CVM creates its claim, Secret and supervisor Pod, admitted by the real admission chain; kwok runs it", async () => {
    const env = environment();
    const { context, lines, states } = recorder({ username: "ada", password: "s3cret-pw" });
    const observation = await provider.build(env, context);

    assert.equal(observation.running, true);
    assert.equal(observation.exists, true);
    assert.equal(observation.runtime, "userns");
    assert.deepEqual(states, ["pulling", "creating", "starting"]);
    assert.ok(
      lines.some((l) => l.startsWith(`created Pod ${objectNames(env.id).pod}`)),
      lines.join("\n"),
    );

    const created = await pod(env.id);
    assert.ok(created, "the Pod exists");
    assert.equal(created.status?.phase, "Running");
    assert.equal(created.metadata?.labels?.["dev.cvm/managed"], "true");
    assert.equal(created.metadata?.labels?.["dev.cvm/environment"], env.id);
    assert.equal(created.metadata?.labels?.["dev.cvm/build"], env.buildId);
    const supervisor = created.spec?.containers[0];
    assert.deepEqual(supervisor?.command, ["cvm", "supervisor"]);
    assert.equal(supervisor?.securityContext?.privileged, true);
    // Pod Security's label is on the namespace; the Pod was admitted as it is (privileged, hostPath).
    const volumes = Object.fromEntries((created.spec?.volumes ?? []).map((v) => [v.name, v]));
    assert.equal(volumes["lib-modules"].hostPath?.path, "/lib/modules");
    assert.equal(volumes.home.persistentVolumeClaim?.claimName, objectNames(env.id).claim);
    assert.ok(!JSON.stringify(created).includes("s3cret-pw"), "the password is not in the Pod");

    const claim = await core.readNamespacedPersistentVolumeClaim({ name: objectNames(env.id).claim, namespace });
    assert.equal(claim.spec?.resources?.requests?.storage, "1Gi");
    assert.equal(claim.status?.phase, "Bound", "the controller manager provisioned and bound the claim");
    const secret = await core.readNamespacedSecret({ name: objectNames(env.id).secret, namespace });
    assert.equal(secret.type, "kubernetes.io/dockerconfigjson");
    const dockerConfig = Buffer.from(secret.data?.[".dockerconfigjson"] ?? "", "base64").toString();
    assert.match(dockerConfig, /s3cret-pw/);
    assert.ok((secret.data?.["report-token"] ?? "").length > 0);

    const observed = await provider.observe(env);
    assert.equal(observed.running, true);
    const workloads = await provider.listWorkloads();
    assert.ok(workloads.some((w) => w.environmentId === env.id && w.running));
    await provider.remove(env, { keepHome: false });
  });

  test("the supervisor's reports reach the build log, with its token only", async () => {
    const env = environment();
    const { context } = recorder();
    await provider.build(env, context);
    const secret = await core.readNamespacedSecret({ name: objectNames(env.id).secret, namespace });
    const token = Buffer.from(secret.data?.["report-token"] ?? "", "base64").toString();
    await assert.rejects(provider.acceptSupervisorReport(env.id, "not-the-token", { lines: ["x"] }), (error) => {
      assert.ok(error instanceof CvmError);
      assert.equal(error.code, "UNAUTHORIZED");
      return true;
    });
    await provider.acceptSupervisorReport(env.id, token, {
      observation: { systemd: "running", docker: "answering", failedUnits: [] },
    });
    const observed = await provider.observe(env);
    assert.equal(observed.systemd, "running");
    assert.equal(observed.docker, "answering");
    // A second provider (a restarted server) checks the token against the Secret.
    const second = await open();
    try {
      await second.acceptSupervisorReport(env.id, token, { lines: ["after a restart"] });
      assert.equal((await second.observe(env)).running, true);
    } finally {
      await second.close();
    }
    await provider.remove(env, { keepHome: false });
  });

  test("a namespace enforcing baseline Pod Security refuses a CVM, and the build fails in the admission's own words", async () => {
    const strict = `cvm-k8s-baseline-${process.pid}`;
    await createTestNamespace(kube, strict, { "pod-security.kubernetes.io/enforce": "baseline" });
    const strictProvider = await createKubernetesProvider({
      kind: "kubernetes",
      kubeconfig: kube.kubeconfig,
      namespace: strict,
      dataDir,
      logger,
    });
    try {
      const env = environment();
      const { context } = recorder();
      await assert.rejects(strictProvider.build(env, context), (error) => {
        assert.ok(error instanceof CvmError);
        assert.match(error.message, /violates PodSecurity "baseline:latest"/);
        assert.match(
          error.message,
          /privileged \(container "supervisor" must not set securityContext\.privileged=true\)/,
        );
        assert.match(error.message, /hostPath volumes/);
        return true;
      });
      // The same namespace runs a standard environment: the refusal is about what a CVM needs.
      const standard = environment({ cvm: false, runtime: "none", image: "debian:12" });
      const observation = await strictProvider.build(standard, recorder().context);
      assert.equal(observation.running, true);
      assert.equal(observation.runtime, "none");
      await strictProvider.remove(standard, { keepHome: false });
    } finally {
      await strictProvider.close();
    }
  });

  test("stop deletes the Pod and keeps claim and Secret; start makes a new Pod; rebuild keeps home; delete removes everything", async () => {
    const env = environment();
    await provider.build(env, recorder().context);
    const first = await pod(env.id);

    await provider.stop(env, 5);
    assert.equal(await pod(env.id), undefined, "stop deletes the Pod");
    assert.equal(await claimExists(env.id), true, "stop keeps the claim");
    assert.equal(await secretExists(env.id), true, "stop keeps the Secret");
    assert.equal((await provider.observe(env)).exists, false);

    const started = { ...env, buildId: newId("bld") };
    assert.equal((await provider.start(started, recorder().context)).running, true);
    const second = await pod(env.id);
    assert.notEqual(second?.metadata?.uid, first?.metadata?.uid, "start made a new Pod");
    assert.equal(second?.metadata?.labels?.["dev.cvm/build"], started.buildId);

    const claimUid = (await core.readNamespacedPersistentVolumeClaim({ name: objectNames(env.id).claim, namespace }))
      .metadata?.uid;
    await provider.discard(started, { keepDockerData: false });
    const marked = await core.readNamespacedPersistentVolumeClaim({ name: objectNames(env.id).claim, namespace });
    assert.equal(marked.metadata?.uid, claimUid, "rebuild keeps the home claim");
    assert.equal(marked.metadata?.annotations?.["dev.cvm/discard-docker-data"], "true");
    const rebuilt = { ...env, buildId: newId("bld") };
    await provider.build(rebuilt, recorder().context);
    const third = await pod(env.id);
    const discardVar = third?.spec?.containers[0].env?.find((e) => e.name === "CVM_DISCARD_DOCKER_DATA");
    assert.equal(discardVar?.value, "true", "the rebuilt supervisor empties the inner Docker's data");
    const cleared = await core.readNamespacedPersistentVolumeClaim({ name: objectNames(env.id).claim, namespace });
    assert.equal(cleared.metadata?.annotations?.["dev.cvm/discard-docker-data"], undefined);

    await provider.remove(rebuilt, { keepHome: true });
    assert.equal(await pod(env.id), undefined);
    assert.equal(await secretExists(env.id), false, "delete removes the Secret");
    assert.equal(await claimExists(env.id), true, "delete with keepHome keeps the claim");
    await provider.remove(rebuilt, { keepHome: false });
    assert.equal(await claimExists(env.id), false, "delete removes the claim");
  });

  test("a dropped watch resumes by itself and sees what changed meanwhile", async () => {
    const watcher = await open();
    try {
      const env = environment();
      watcher.interruptWatch();
      // Changes while the watch is down: a Pod appears and runs.
      await provider.build(env, recorder().context);
      await waitFor(async () => (await watcher.observe(env)).running);
      assert.ok(watcher.watchRestarts >= 1, "the watch dropped and resumed");
      watcher.interruptWatch();
      await provider.remove(env, { keepHome: false });
      await waitFor(async () => !(await watcher.observe(env)).exists);
    } finally {
      await watcher.close();
    }
  });

  test("a server restarted mid-build adopts the Pod it finds instead of making another", async () => {
    // More CPU than any node has: the Pod waits for the scheduler, mid-build.
    const env = environment({ cpu: 100 });
    const { context, controller, lines } = recorder();
    const building = provider.build(env, context);
    await waitFor(async () => lines.some((l) => l.startsWith("not scheduled:")));
    const before = await pod(env.id);
    assert.ok(before, "the Pod exists mid-build");
    // The server goes away mid-build: its build ends, the Pod stays.
    controller.abort(new Error("the server is shutting down"));
    await assert.rejects(building);
    const restarted = await open();
    try {
      const resumed = recorder();
      const adopting = restarted.build(env, resumed.context);
      await waitFor(async () => resumed.lines.some((l) => l.startsWith("adopting Pod")));
      // Capacity arrives; the adopted Pod is scheduled and runs.
      await core.createNode({
        body: {
          metadata: {
            name: "kwok-big",
            annotations: { "kwok.x-k8s.io/node": "fake" },
            labels: { "kubernetes.io/hostname": "kwok-big", type: "kwok" },
          },
          status: {
            allocatable: { cpu: "128", memory: "512Gi", pods: "110" },
            capacity: { cpu: "128", memory: "512Gi", pods: "110" },
          },
        },
      });
      const observation = await adopting;
      assert.equal(observation.running, true);
      const after = await pod(env.id);
      assert.equal(after?.metadata?.uid, before.metadata?.uid, "the same Pod, adopted");
      assert.equal(after?.spec?.nodeName, "kwok-big");
      assert.ok(!resumed.lines.some((l) => l.startsWith("created Pod")), resumed.lines.join("\n"));
      await restarted.remove(env, { keepHome: false });
    } finally {
      await restarted.close();
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("condition not met in time");
}
