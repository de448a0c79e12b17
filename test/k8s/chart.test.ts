/**
 * The Helm chart, rendered by helm and applied to a real API server: its
 * objects are accepted, and its ServiceAccount's RBAC is enough for
 * everything the provider does and no more (the API server refuses the rest).
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { CoreV1Api, KubeConfig, type KubernetesObject, KubernetesObjectApi } from "@kubernetes/client-node";
import { pino } from "pino";
import { parseAllDocuments } from "yaml";
import { createKubernetesProvider } from "../../src/providers/kubernetes/index.js";
import { newId } from "../../src/store/ids.js";
import * as fixtures from "../../src/testing/fixtures.js";
import {
  binaryPath,
  createTestNamespace,
  ensureKubeBinaries,
  type Kube,
  kubeRelease,
  kubeSuiteTimeoutMs,
  kubeUnavailable,
  startKube,
} from "../harness/kube.js";

const run = promisify(execFile);
const chart = join(import.meta.dirname, "..", "..", "deploy", "helm", "cvm");
const namespace = `cvm-chart-${process.pid}`;
const unavailable = kubeUnavailable();

async function helmTemplate(...set: string[]): Promise<string> {
  // The cluster's own version: helm otherwise assumes the one it was built against.
  const args = [
    "template",
    "cvm",
    chart,
    "--namespace",
    namespace,
    "--kube-version",
    kubeRelease,
    ...set.flatMap((s) => ["--set", s]),
  ];
  const { stdout } = await run(binaryPath("helm"), args, { maxBuffer: 8 * 1024 * 1024 });
  return stdout;
}

describe("the Helm chart on a real API server", {
  skip: unavailable,
  timeout: kubeSuiteTimeoutMs(["kube-apiserver", "kwok", "helm"]),
}, () => {
  let kube: Kube;
  let rendered: KubernetesObject[];

  before(async () => {
    await ensureKubeBinaries(["helm"]);
    kube = await startKube();
    await createTestNamespace(kube, namespace, { "pod-security.kubernetes.io/enforce": "privileged" });
    const text = await helmTemplate("postgres.url=postgres://cvm:pw@db:5432/cvm");
    rendered = parseAllDocuments(text)
      .map((doc) => doc.toJS() as KubernetesObject)
      .filter(Boolean);
  });

  after(async () => {
    await kube?.stop();
  });

  test("helm renders the chart and the API server accepts every object", async () => {
    const kinds = rendered.map((o) => o.kind).sort();
    assert.deepEqual(kinds, ["Deployment", "Role", "RoleBinding", "Secret", "Secret", "Service", "ServiceAccount"]);
    const objects = KubernetesObjectApi.makeApiClient(kube.config());
    for (const object of rendered) await objects.create(object);
    const deployment = rendered.find((o) => o.kind === "Deployment") as unknown as {
      spec: { template: { spec: { containers: { args: string[]; env: { name: string; valueFrom?: unknown }[] }[] } } };
    };
    const server = deployment.spec.template.spec.containers[0];
    assert.ok(server.args.includes("--provider=kubernetes"));
    assert.ok(server.args.includes(`--namespace=${namespace}`));
    const postgres = server.env.find((e) => e.name === "CVM_POSTGRES_URL");
    assert.ok(postgres?.valueFrom, "the PostgreSQL URL comes from a Secret, not a value");
    // The key that seals stored secrets: a Secret the chart made, 32 random bytes, kept on uninstall.
    const secretKey = server.env.find((e) => e.name === "CVM_SECRET_KEY");
    const keySecret = rendered.find((o) => o.kind === "Secret" && o.metadata?.name?.endsWith("-secret-key")) as
      | (KubernetesObject & { data: Record<string, string> })
      | undefined;
    assert.deepEqual(secretKey?.valueFrom, { secretKeyRef: { name: keySecret?.metadata?.name, key: "key" } });
    assert.equal(Buffer.from(Buffer.from(keySecret?.data.key ?? "", "base64").toString(), "base64").length, 32);
    assert.equal(keySecret?.metadata?.annotations?.["helm.sh/resource-policy"], "keep");
  });

  test("more than one replica without PostgreSQL is refused at render time", async () => {
    await assert.rejects(helmTemplate("replicaCount=2"), /replicaCount > 1 needs PostgreSQL/);
  });

  test("as the chart's ServiceAccount, the provider's work succeeds and anything else is refused", async () => {
    const core = kube.config().makeApiClient(CoreV1Api);
    const request = await core.createNamespacedServiceAccountToken({
      name: "cvm",
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const token = request.status?.token;
    assert.ok(token, "a token for the chart's ServiceAccount");
    const kubeconfig = kube.kubeconfigForToken(token, "cvm-chart-sa");

    const provider = await createKubernetesProvider({
      kind: "kubernetes",
      kubeconfig,
      namespace,
      dataDir: mkdtempSync(join(tmpdir(), "cvm-chart-")),
      logger: pino({ level: "silent" }),
      stopTimeoutSeconds: 5,
    });
    try {
      const environment = fixtures.environment({
        name: "chart-rbac",
        image: "127.0.0.1:5000/cvm-test/ubuntu-systemd-docker:latest",
        cvm: true,
        buildId: newId("bld"),
      });
      const context = fixtures.recordingContext({
        settings: fixtures.settings({ cvmEnabled: true }),
        credentials: { username: "ada", password: "pw" },
      });
      assert.equal((await provider.build(environment, context)).running, true, "create");
      await provider.stop(environment, 5);
      assert.equal((await provider.start({ ...environment, buildId: newId("bld") }, context)).running, true, "start");
      await provider.discard(environment, { keepDockerData: false });
      assert.equal((await provider.build({ ...environment, buildId: newId("bld") }, context)).running, true, "rebuild");
      await provider.remove(environment, { keepHome: false });
    } finally {
      await provider.close();
    }

    const asServer = new KubeConfig();
    asServer.loadFromFile(kubeconfig);
    const serverCore = asServer.makeApiClient(CoreV1Api);
    const refused = async (what: string, attempt: Promise<unknown>) => {
      await assert.rejects(attempt, (error: { code?: number }) => {
        assert.equal(error.code, 403, `${what} must be refused`);
        return true;
      });
    };
    await refused("listing Secrets in another namespace", serverCore.listNamespacedSecret({ namespace: "default" }));
    await refused("listing Secrets cluster-wide", serverCore.listSecretForAllNamespaces());
    await refused("deleting a node", serverCore.deleteNode({ name: "kwok-node-0" }));
    await refused("creating a namespace", serverCore.createNamespace({ body: { metadata: { name: "cvm-escape" } } }));
    await refused(
      "creating Pods in another namespace",
      serverCore.createNamespacedPod({
        namespace: "default",
        body: { metadata: { name: "escape" }, spec: { containers: [{ name: "x", image: "x" }] } },
      }),
    );
    await refused("listing the namespace's Secrets (only get by name)", serverCore.listNamespacedSecret({ namespace }));
  });
});
