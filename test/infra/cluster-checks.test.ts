/**
 * The cluster checks against a real API server (the Kubernetes harness: etcd,
 * kube-apiserver with its default admission chain, kwok nodes). Pod Security
 * Admission answers for itself: a namespace enforcing `baseline` refuses the
 * supervisor Pod, and the doctor shows the admission's own message.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { AdmissionregistrationV1Api, CoreV1Api, RbacAuthorizationV1Api, type V1Pod } from "@kubernetes/client-node";
import type { CheckResult, ChecksResponse } from "../../src/api/contract.js";
import { defaultSettings, type InfrastructureSettings } from "../../src/core/settings.js";
import { runClusterChecks, type TrialOptions } from "../../src/infra/cluster-checks.js";
import { removeLeftoverTrials, trialPodSpec, trialSecretSpec } from "../../src/infra/supervisor-trial.js";
import { compiledCvm, cvmBin as cvm } from "../harness/cli.js";
import { createTestNamespace, type Kube, kubeUnavailable, startKube } from "../harness/kube.js";

const run = promisify(execFile);
const prefix = `cvm-doctor-${process.pid}`;
const ns = {
  privileged: `${prefix}-priv`,
  baseline: `${prefix}-base`,
  warned: `${prefix}-warn`,
  istio: `${prefix}-istio`,
  limited: `${prefix}-rbac`,
};
const nodes = [
  { name: "kwok-ubuntu", kernelVersion: "5.15.0-1049-gke", osImage: "Ubuntu 22.04.3 LTS" },
  { name: "kwok-cos-old", kernelVersion: "4.19.112+", osImage: "Container-Optimized OS from Google" },
];

const byId = (results: CheckResult[]) => new Map(results.map((r) => [r.id, r]));

describe("cluster checks on a real API server", { skip: kubeUnavailable(), timeout: 900_000 }, () => {
  let kube: Kube;
  // kwok's Pods "run" and never end: the trial waits its bound out, so here a short one.
  const checks = (
    namespace: string,
    settings: InfrastructureSettings = defaultSettings,
    kubeconfig = kube.kubeconfig,
    trial: TrialOptions = { timeoutSeconds: 3 },
  ) => runClusterChecks({ settings, kubeconfig, namespace, trial }).then(byId);

  before(async () => {
    await compiledCvm();
    kube = await startKube({ nodes });
    await createTestNamespace(kube, ns.privileged, { "pod-security.kubernetes.io/enforce": "privileged" });
    await createTestNamespace(kube, ns.baseline, { "pod-security.kubernetes.io/enforce": "baseline" });
    await createTestNamespace(kube, ns.warned, {
      "pod-security.kubernetes.io/enforce": "privileged",
      "pod-security.kubernetes.io/warn": "baseline",
    });
    await createTestNamespace(kube, ns.istio, {
      "pod-security.kubernetes.io/enforce": "privileged",
      "istio-injection": "enabled",
    });
    await createTestNamespace(kube, ns.limited, { "pod-security.kubernetes.io/enforce": "privileged" });
  });

  after(async () => {
    await kube?.stop();
  });

  test("a privileged namespace admits the supervisor Pod; version, RBAC and Istio pass", async () => {
    const results = await checks(ns.privileged);
    assert.equal(results.get("cluster-version")?.status, "pass");
    assert.match(results.get("cluster-version")!.evidence, /^server gitVersion v1\.\d+\.\d+/);
    const admission = results.get("supervisor-admission")!;
    assert.equal(admission.status, "pass", admission.evidence);
    assert.match(admission.evidence, new RegExp(`privileged; hostPath .* in namespace ${ns.privileged}: admitted$`));
    assert.equal(results.get("rbac")?.status, "pass", results.get("rbac")?.evidence);
    const istio = results.get("istio")!;
    assert.equal(istio.status, "pass", istio.evidence);
    assert.match(istio.evidence, /dry-run Pod containers: supervisor$/);
    // The dry run left nothing behind.
    const pods = await kube.config().makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns.privileged });
    assert.deepEqual(pods.items, []);
  });

  test("every node's kernel and OS image from nodeInfo: the old COS node fails, by name", async () => {
    const results = await checks(ns.privileged);
    const kernel = results.get("node-kernel")!;
    assert.equal(kernel.status, "fail");
    assert.match(kernel.evidence, /kwok-ubuntu: pass: kernel release 5\.15\.0-1049-gke/);
    assert.match(kernel.evidence, /kwok-cos-old: fail: kernel release 4\.19\.112\+/);
    assert.match(kernel.remedy ?? "", /^kwok-cos-old and any like it: Upgrade/);
    assert.equal(results.get("node-os")?.status, "pass", "any OS for the built-in runtime");
    const sysbox = await checks(ns.privileged, { ...defaultSettings, runtime: "sysbox" });
    const os = sysbox.get("node-os")!;
    assert.equal(os.status, "fail");
    assert.match(os.evidence, /kwok-cos-old: fail: osImage "Container-Optimized OS from Google"/);
    assert.match(os.evidence, /kwok-ubuntu: pass: osImage "Ubuntu 22\.04\.3 LTS"/);
  });

  test("Pod Security Admission at baseline refuses the supervisor Pod, in its own words", async () => {
    const admission = (await checks(ns.baseline)).get("supervisor-admission")!;
    assert.equal(admission.status, "fail");
    assert.match(admission.evidence, /is forbidden: violates PodSecurity "baseline:latest"/);
    assert.match(
      admission.evidence,
      /privileged \(container "supervisor" must not set securityContext\.privileged=true\)/,
    );
    assert.match(admission.evidence, /hostPath volumes \(volumes "usr-src", "lib-modules"\)/);
    assert.match(admission.remedy ?? "", new RegExp(`kubectl label namespace ${ns.baseline} pod-security`));

    const capabilities: InfrastructureSettings = {
      ...defaultSettings,
      supervisorPrivileges: { mode: "capabilities", capabilities: ["SYS_ADMIN", "NET_ADMIN"] },
    };
    const listed = (await checks(ns.baseline, capabilities)).get("supervisor-admission")!;
    assert.equal(listed.status, "fail");
    assert.match(listed.evidence, /capabilities SYS_ADMIN,NET_ADMIN/);
    assert.match(listed.evidence, /non-default capabilities .*"NET_ADMIN", "SYS_ADMIN"/);

    // The Pod would be refused: no trial Pod is made, and the check says why.
    const trial = (await checks(ns.baseline)).get("supervisor-trial")!;
    assert.equal(trial.status, "not-applicable", trial.evidence);
    assert.match(
      trial.evidence,
      /^no trial Pod: the namespace refuses the supervisor Pod \(see supervisor-admission\): .*violates PodSecurity "baseline:latest"/,
    );
    const pods = await kube.config().makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns.baseline });
    assert.deepEqual(pods.items, []);
  });

  test("the trial Pod: the CVM Pod's spec with the probe for a command, its Secret, both always removed", async () => {
    const core = kube.config().makeApiClient(CoreV1Api);
    const supervisorImage = "registry.example/cvm/supervisor:trial";
    const settings: InfrastructureSettings = {
      ...defaultSettings,
      runtime: "sysbox",
      pools: [{ image: "registry.example/team/pooled:1", cpu: 1, memoryGiB: 1, diskGiB: 1, count: 1 }],
    };
    // Watch what the check creates while it runs.
    let seen: V1Pod | undefined;
    let secretSeen = false;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const [pod] = (await core.listNamespacedPod({ namespace: ns.privileged, labelSelector: "dev.cvm/trial=true" }))
          .items;
        if (pod && !seen) seen = pod;
        if (pod && !secretSeen) {
          secretSeen = await core
            .readNamespacedSecret({ name: pod.metadata?.name ?? "", namespace: ns.privileged })
            .then(() => true)
            .catch(() => false);
        }
        await sleep(100);
      }
    })();
    const notes: string[] = [];
    const results = await runClusterChecks(
      {
        settings,
        kubeconfig: kube.kubeconfig,
        namespace: ns.privileged,
        trial: {
          images: ["registry.example/team/dev:1"],
          credentials: { username: "ada", password: "pw" },
          podOptions: { supervisorImage, insecureRegistries: ["registry.internal:5000"] },
          installationId: "inst-kwok",
          timeoutSeconds: 4,
        },
      },
      (progress) => {
        if (progress.type === "note") notes.push(progress.text);
      },
    );
    watching = false;
    await watcher;

    assert.ok(seen, "a trial Pod was created");
    const name = seen.metadata?.name ?? "";
    assert.match(name, /^cvm-trial-[0-9a-f]{8}$/);
    assert.deepEqual(seen.metadata?.labels, { "dev.cvm/trial": "true", "dev.cvm/installation": "inst-kwok" });
    const [container] = seen.spec?.containers ?? [];
    assert.equal(container.image, supervisorImage);
    assert.deepEqual(container.command, [
      "cvm",
      "supervisor",
      "probe",
      "--",
      "registry.example/team/dev:1",
      "registry.example/team/pooled:1",
    ]);
    assert.equal(container.securityContext?.privileged, true);
    const env = new Map(container.env?.map((v) => [v.name, v.value]));
    assert.equal(env.get("CVM_RUNTIME"), "sysbox");
    assert.equal(env.get("CVM_INSECURE_REGISTRIES"), "registry.internal:5000");
    assert.deepEqual(
      seen.spec?.volumes?.map((v) => v.name),
      ["home", "runtime", "report-token", "credentials", "usr-src", "lib-modules"],
      "the CVM Pod's volumes, with the credentials' Secret",
    );
    assert.ok(seen.spec?.volumes?.[0].emptyDir, "an emptyDir for home");
    assert.equal(seen.spec?.volumes?.[0].persistentVolumeClaim, undefined, "no home claim");
    assert.ok(secretSeen, "its Secret existed while it ran");

    const trial = results.find((r) => r.id === "supervisor-trial");
    // kwok runs no container: the Pod is scheduled and "runs", and never answers.
    assert.equal(trial?.status, "fail", trial?.evidence);
    assert.match(trial?.evidence ?? "", /ran on node kwok-\S+ for [\d.]+ s without answering within the 4 s/);
    assert.ok(
      notes.some((n) => n.startsWith(`created trial Pod ${name}`)),
      notes.join("\n"),
    );
    assert.ok(
      notes.some((n) => /^running on node kwok-/.test(n)),
      notes.join("\n"),
    );

    await assert.rejects(core.readNamespacedPod({ name, namespace: ns.privileged }), { code: 404 });
    await assert.rejects(core.readNamespacedSecret({ name, namespace: ns.privileged }), { code: 404 });
  });

  test("a trial Pod no node can take: the scheduler's message, once its no has held a while", async () => {
    // The smallest CVM these settings allow is bigger than any node.
    const settings: InfrastructureSettings = {
      ...defaultSettings,
      limits: { ...defaultSettings.limits, minCpu: 500, maxCpu: 1000 },
    };
    const trial = (await checks(ns.privileged, settings, kube.kubeconfig, { timeoutSeconds: 60 })).get(
      "supervisor-trial",
    )!;
    assert.equal(trial.status, "fail", trial.evidence);
    assert.match(trial.evidence, /no node can take it: 0\/\d+ nodes are available: .*Insufficient cpu/);
    assert.match(trial.remedy ?? "", /Add nodes with room for the smallest CVM/);
    const pods = await kube.config().makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns.privileged });
    assert.deepEqual(pods.items, [], "the unscheduled trial Pod is gone too");
  });

  test("the trial ends when the doctor is interrupted, and a Pod a crashed doctor left is removed by the next run", async () => {
    const core = kube.config().makeApiClient(CoreV1Api);
    const interrupt = new AbortController();
    const begun = Date.now();
    setTimeout(() => interrupt.abort(), 1500);
    const results = await runClusterChecks({
      settings: defaultSettings,
      kubeconfig: kube.kubeconfig,
      namespace: ns.privileged,
      trial: { timeoutSeconds: 90, signal: interrupt.signal },
    });
    assert.ok(Date.now() - begun < 30_000, "the interrupted trial did not wait its 90 s");
    const interrupted = results.find((r) => r.id === "supervisor-trial");
    assert.equal(interrupted?.status, "fail");
    assert.match(interrupted?.evidence ?? "", /the checks were interrupted before it answered/);
    const trials = () =>
      core
        .listNamespacedPod({ namespace: ns.privileged, labelSelector: "dev.cvm/trial=true" })
        .then((list) => list.items.map((pod) => pod.metadata?.name));
    assert.deepEqual(await trials(), [], "the interrupted trial's Pod is gone");

    // A doctor killed mid-trial leaves its Pod and Secret; the next run finds them by their labels.
    const request = {
      id: "trial-0ddba11",
      images: [],
      timeoutSeconds: 3,
      podOptions: {},
      registrySecret: true,
    };
    await core.createNamespacedPod({ namespace: ns.privileged, body: trialPodSpec(defaultSettings, request) });
    await core.createNamespacedSecret({
      namespace: ns.privileged,
      body: trialSecretSpec(defaultSettings, request, { username: "ada", password: "pw" }),
    });
    assert.deepEqual(
      await removeLeftoverTrials(core, ns.privileged, 3),
      [],
      "a young trial may be another doctor's, running now",
    );
    assert.deepEqual(await removeLeftoverTrials(core, ns.privileged, 3, Date.now() + 10 * 60_000), [
      "cvm-trial-0ddba11",
    ]);
    assert.deepEqual(await trials(), []);
    await assert.rejects(core.readNamespacedSecret({ name: "cvm-trial-0ddba11", namespace: ns.privileged }), {
      code: 404,
    });
  });

  test("a namespace that only warns admits the Pod, and the warning shows", async () => {
    const admission = (await checks(ns.warned)).get("supervisor-admission")!;
    assert.equal(admission.status, "warn", admission.evidence);
    assert.match(admission.evidence, /admitted, with warnings: would violate PodSecurity "baseline:latest"/);
  });

  test("Istio: injection on the namespace fails; a cluster-wide injector warns elsewhere", async () => {
    const admission = kube.config().makeApiClient(AdmissionregistrationV1Api);
    const name = `istio-sidecar-injector-${prefix}`;
    await admission.createMutatingWebhookConfiguration({
      body: {
        metadata: { name },
        webhooks: [
          {
            name: "sidecar-injector.istio.io",
            // Nothing listens: Ignore lets the test's Pods through uninjected.
            clientConfig: { url: "https://127.0.0.1:1/inject" },
            rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"] }],
            namespaceSelector: { matchLabels: { "istio-injection": "enabled" } },
            failurePolicy: "Ignore",
            sideEffects: "None",
            admissionReviewVersions: ["v1"],
            timeoutSeconds: 1,
          },
        ],
      },
    });
    try {
      const labeled = (await checks(ns.istio)).get("istio")!;
      assert.equal(labeled.status, "fail");
      assert.match(labeled.evidence, /labels: istio-injection=enabled; injector webhooks: istio-sidecar-injector-/);
      assert.match(labeled.remedy ?? "", /istio-injection=disabled/);
      const elsewhere = (await checks(ns.privileged)).get("istio")!;
      assert.equal(elsewhere.status, "warn");
      assert.match(elsewhere.evidence, /a cluster-wide injector is installed/);
    } finally {
      await admission.deleteMutatingWebhookConfiguration({ name });
    }
  });

  test("an account without the provider's RBAC: each denied verb is named", async () => {
    const admin = kube.config();
    const core = admin.makeApiClient(CoreV1Api);
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({ namespace: ns.limited, body: { metadata: { name: "cvm" } } });
    await rbac.createNamespacedRole({
      namespace: ns.limited,
      body: {
        metadata: { name: "pods-read-only" },
        rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns.limited,
      body: {
        metadata: { name: "cvm-pods-read-only" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pods-read-only" },
        subjects: [{ kind: "ServiceAccount", name: "cvm", namespace: ns.limited }],
      },
    });
    const token = await core.createNamespacedServiceAccountToken({
      name: "cvm",
      namespace: ns.limited,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const kubeconfig = kube.kubeconfigForToken(token.status!.token, `${prefix}-limited`);
    const results = await checks(ns.limited, defaultSettings, kubeconfig);
    const access = results.get("rbac")!;
    assert.equal(access.status, "fail");
    assert.match(
      access.evidence,
      new RegExp(`^denied in ${ns.limited}: create pods, delete pods, create pods/exec, get pods/exec, get secrets`),
    );
    const denied = access.evidence.replace(/^denied in \S+: /, "").split(", ");
    for (const granted of ["get pods", "list pods", "watch pods"]) assert.ok(!denied.includes(granted), granted);
    assert.ok(denied.includes("patch persistentvolumeclaims"), access.evidence);
    // Listing nodes is forbidden too: the API server's message, verbatim.
    const kernel = results.get("node-kernel")!;
    assert.equal(kernel.status, "fail");
    assert.match(
      kernel.evidence,
      /nodes is forbidden: User "system:serviceaccount:.*:cvm" cannot list resource "nodes"/,
    );
    // The dry run is refused by RBAC before admission; that is what the user must fix.
    assert.match(results.get("supervisor-admission")!.evidence, /pods is forbidden: User "system:serviceaccount/);
  });

  test("a namespace that does not exist fails the admission check with the API's message", async () => {
    const admission = (await checks(`${prefix}-missing`)).get("supervisor-admission")!;
    assert.equal(admission.status, "fail");
    assert.match(admission.evidence, /namespaces "cvm-doctor-\d+-missing" not found/);
    assert.match(admission.remedy ?? "", /kubectl create namespace/);
  });

  test("cvm doctor --kubeconfig --namespace: the baseline refusal, verbatim, and exit code 2", async () => {
    const result = await run(cvm, ["doctor", "--json", "--kubeconfig", kube.kubeconfig, "--namespace", ns.baseline], {
      timeout: 120_000,
    }).catch((error) => error);
    assert.equal(result.code, 2, result.stderr);
    const response = JSON.parse(result.stdout) as ChecksResponse;
    const admission = response.checks.find((c) => c.id === "supervisor-admission")!;
    assert.equal(admission.status, "fail");
    assert.match(admission.evidence, /violates PodSecurity "baseline:latest"/);
    assert.equal(response.worst, "fail");
  });
});
