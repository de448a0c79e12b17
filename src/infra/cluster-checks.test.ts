/**
 * The cluster checks' judges, fed what an API server answers. The same checks
 * against a real kube-apiserver are in test/infra/cluster-checks.test.ts.
 */

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ApiException } from "@kubernetes/client-node";
import { parse } from "yaml";
import type { CheckStatus } from "../api/contract.js";
import { defaultSettings } from "../core/settings.js";
import { apiMessage } from "../kubernetes/index.js";
import type { Verdict } from "./check.js";
import {
  type DryRunEvidence,
  judgeAccess,
  judgeAdmission,
  judgeIstio,
  judgeNodeKernels,
  judgeNodeOs,
  judgeServerVersion,
  osFromImage,
  providerAccess,
  providerRules,
  runClusterChecks,
} from "./cluster-checks.js";
import { supervisorPodForDryRun } from "./supervisor-pod.js";

function expect(verdict: Verdict, status: CheckStatus, evidence?: RegExp, remedy?: RegExp) {
  assert.equal(verdict.status, status, verdict.evidence);
  if (evidence) assert.match(verdict.evidence, evidence);
  if (status !== "pass") assert.ok(verdict.remedy, "a warn or fail says what to do");
  if (remedy) assert.match(verdict.remedy ?? "", remedy);
}

test("server versions: EKS, GKE and k3s strings; 1.16 refused", () => {
  expect(judgeServerVersion("v1.29.0-eks-a5ec690"), "pass", /v1\.29\.0-eks-a5ec690/);
  expect(judgeServerVersion("v1.27.3-gke.100"), "pass");
  expect(judgeServerVersion("v1.30.2+k3s1"), "pass");
  expect(judgeServerVersion("v1.16.15-gke.4901"), "fail", /1\.17 or newer/, /Upgrade/);
  expect(judgeServerVersion("weird"), "fail");
});

const osImages: [string, string, string][] = [
  ["Ubuntu 22.04.3 LTS", "ubuntu", "22.04"],
  ["Ubuntu 20.04.6 LTS", "ubuntu", "20.04"],
  ["Container-Optimized OS from Google", "cos", ""],
  ["Debian GNU/Linux 12 (bookworm)", "debian", "12"],
  ["Amazon Linux 2", "amzn", "2"],
  ["Bottlerocket OS 1.19.0 (aws-k8s-1.28)", "bottlerocket", "1.19.0"],
  ["CBL-Mariner/Linux", "mariner", ""],
  ["Something Else 1.0", "unknown", ""],
];

for (const [image, id, versionId] of osImages) {
  test(`osImage "${image}" is ${id} ${versionId}`, () => {
    const os = osFromImage(image);
    assert.deepEqual([os.id, os.versionId], [id, versionId]);
  });
}

const gkeUbuntu = { name: "gke-a", kernelVersion: "5.4.0-1049-gke", osImage: "Ubuntu 20.04.6 LTS" };
const gkeCos = { name: "gke-b", kernelVersion: "5.15.120+", osImage: "Container-Optimized OS from Google" };
const oldNode = { name: "old-1", kernelVersion: "4.19.112+", osImage: "Container-Optimized OS from Google" };
const eks = { name: "ip-10-0-1-5", kernelVersion: "6.8.0-1015-aws", osImage: "Ubuntu 24.04 LTS" };

test("every node's kernel: the worst node decides, every node is listed", () => {
  expect(judgeNodeKernels([gkeUbuntu, eks], "userns"), "pass", /gke-a: pass: kernel release 5\.4\.0-1049-gke/);
  const verdict = judgeNodeKernels([gkeUbuntu, oldNode], "userns");
  expect(verdict, "fail", /old-1: fail: kernel release 4\.19\.112\+/, /^old-1 and any like it: Upgrade/);
  assert.match(verdict.evidence, /gke-a: pass/);
  expect(judgeNodeKernels([], "userns"), "warn", /no nodes/);
});

test("every node's OS: Ubuntu for sysbox; COS cannot take sysbox; anything for the built-in runtime", () => {
  expect(judgeNodeOs([gkeUbuntu, eks], "sysbox"), "pass", /osImage "Ubuntu 20\.04\.6 LTS"/);
  expect(judgeNodeOs([gkeUbuntu, gkeCos], "sysbox"), "fail", /gke-b: fail/, /UBUNTU_CONTAINERD/);
  expect(
    judgeNodeOs([{ ...eks, osImage: "Debian GNU/Linux 12 (bookworm)" }], "sysbox"),
    "warn",
    /sysbox is supported on Ubuntu nodes/,
  );
  expect(judgeNodeOs([gkeCos], "userns"), "pass");
});

const admitted: DryRunEvidence = {
  namespace: "cvm",
  asked: "privileged; hostPath /usr/src and /lib/modules read-only",
  admitted: true,
  warnings: [],
  containers: ["supervisor"],
};
const baselineMessage =
  'pods "cvm-doctor-x" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volumes "usr-src", "lib-modules"), privileged (container "supervisor" must not set securityContext.privileged=true)';

test("admission: admitted, admitted with warnings, refused with the admission's own message", () => {
  expect(judgeAdmission(admitted), "pass", /in namespace cvm: admitted$/);
  expect(
    judgeAdmission({ ...admitted, warnings: ['would violate PodSecurity "restricted:latest": privileged'] }),
    "warn",
    /would violate PodSecurity "restricted:latest"/,
  );
  const refused = judgeAdmission({ ...admitted, admitted: false, message: baselineMessage, containers: [] });
  expect(refused, "fail", undefined, /pod-security\.kubernetes\.io\/enforce=privileged/);
  assert.ok(refused.evidence.endsWith(baselineMessage), refused.evidence);
  const missing = judgeAdmission({ ...admitted, admitted: false, code: 404, message: 'namespaces "cvm" not found' });
  expect(missing, "fail", /namespaces "cvm" not found$/, /kubectl create namespace cvm/);
  const rbac =
    'pods is forbidden: User "system:serviceaccount:cvm:cvm" cannot create resource "pods" in API group "" in the namespace "cvm"';
  expect(
    judgeAdmission({ ...admitted, admitted: false, code: 403, message: rbac }),
    "fail",
    /cannot create resource/,
    /Role/,
  );
  expect(
    judgeAdmission({ ...admitted, admitted: false, code: 403, message: baselineMessage }),
    "fail",
    /violates PodSecurity/,
    /enforce=privileged/,
  );
});

test("the API's own message is taken from the Status body", () => {
  const body = JSON.stringify({ kind: "Status", status: "Failure", message: baselineMessage, code: 403 });
  assert.equal(apiMessage(new ApiException(403, "Unknown API Status Code!", body, {})), baselineMessage);
  assert.equal(apiMessage(new ApiException(401, "Unauthorized", undefined, {})), "HTTP 401");
  assert.equal(apiMessage(new Error("connect ECONNREFUSED 127.0.0.1:1")), "connect ECONNREFUSED 127.0.0.1:1");
});

test("Istio: injection on the namespace fails, a cluster-wide injector warns, a sidecar in the dry run fails", () => {
  const none = { namespace: "cvm", namespaceLabels: {}, injectors: [], dryRunContainers: ["supervisor"] };
  expect(judgeIstio(none), "pass", /no istio labels; injector webhooks: none/);
  expect(judgeIstio({ ...none, namespaceLabels: { "istio-injection": "enabled" } }), "fail", /istio-injection=enabled/);
  expect(judgeIstio({ ...none, namespaceLabels: { "istio.io/rev": "1-22" } }), "fail", /istio\.io\/rev=1-22/);
  expect(judgeIstio({ ...none, injectors: ["istio-sidecar-injector"] }), "warn", /istio-sidecar-injector/, /disabled/);
  expect(
    judgeIstio({ ...none, injectors: ["istio-sidecar-injector"], namespaceLabels: { "istio-injection": "disabled" } }),
    "pass",
  );
  expect(judgeIstio({ ...none, dryRunContainers: ["istio-init", "supervisor", "istio-proxy"] }), "fail", /istio-proxy/);
  expect(judgeIstio({ ...none, injectors: "forbidden" }), "pass", /could not list: forbidden/);
});

test("RBAC: every verb the provider uses, and what is denied", () => {
  const all = providerAccess.map((q) => ({ ...q, allowed: true }));
  assert.ok(all.some((a) => a.verb === "patch" && a.resource === "persistentvolumeclaims"));
  assert.ok(all.some((a) => a.verb === "create" && a.resource === "pods" && a.subresource === "exec"));
  expect(
    judgeAccess(all, "cvm"),
    "pass",
    /get pods, list pods, watch pods, create pods, delete pods, create pods\/exec/,
  );
  const noSecrets = all.map((a) => (a.resource === "secrets" && a.verb === "create" ? { ...a, allowed: false } : a));
  expect(judgeAccess(noSecrets, "cvm"), "fail", /^denied in cvm: create secrets$/, /Role/);
});

test("the RBAC asked about is exactly the Helm chart's Role", () => {
  const chart = readFileSync(join(import.meta.dirname, "../../deploy/helm/cvm/templates/rbac.yaml"), "utf8");
  const rulesText = /^rules:\n([\s\S]*?)^---/m.exec(chart)?.[1];
  assert.ok(rulesText, "the chart's Role has rules");
  const rules = parse(rulesText) as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
  const fromChart = rules.flatMap((r) => r.resources.map((resource) => ({ resource, verbs: [...r.verbs].sort() })));
  const asked = providerRules.map((r) => ({ resource: r.resource, verbs: [...r.verbs].sort() }));
  assert.deepEqual(
    asked.sort((a, b) => a.resource.localeCompare(b.resource)),
    fromChart.sort((a, b) => a.resource.localeCompare(b.resource)),
  );
});

test("the supervisor Pod asks for privileged or the capability list, and read-only hostPaths", () => {
  const privileged = supervisorPodForDryRun(defaultSettings, "doctor-p");
  assert.equal(privileged.metadata?.name, "cvm-doctor-p");
  assert.equal(privileged.spec?.containers[0].securityContext?.privileged, true);
  const hostPaths = privileged.spec?.volumes?.filter((v) => v.hostPath).map((v) => v.hostPath?.path);
  assert.deepEqual(hostPaths, ["/usr/src", "/lib/modules"]);
  const readOnly = privileged.spec?.containers[0].volumeMounts?.filter((m) => m.readOnly).map((m) => m.mountPath);
  assert.ok(readOnly?.includes("/usr/src") && readOnly.includes("/lib/modules"), `${readOnly}`);
  const capabilities = supervisorPodForDryRun(
    {
      ...defaultSettings,
      supervisorPrivileges: { mode: "capabilities", capabilities: ["CAP_SYS_ADMIN", "NET_ADMIN"] },
    },
    "doctor-c",
  );
  const context = capabilities.spec?.containers[0].securityContext;
  assert.deepEqual(context?.capabilities, { add: ["SYS_ADMIN", "NET_ADMIN"] });
  assert.equal(context?.privileged, undefined);
});

test("an API server that does not answer fails every check with the connection error", async () => {
  const kubeconfig = join(tmpdir(), `cvm-doctor-unreachable-${process.pid}.yaml`);
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: nowhere, user: u, namespace: cvm}}]
current-context: c
`,
  );
  const results = await runClusterChecks({ settings: defaultSettings, kubeconfig });
  assert.deepEqual(
    results.map((r) => r.id),
    ["cluster-version", "node-kernel", "node-os", "supervisor-admission", "istio", "rbac", "supervisor-trial"],
  );
  for (const result of results) {
    assert.equal(result.status, "fail");
    assert.match(result.evidence, /ECONNREFUSED/);
  }
  assert.match(results[0].remedy ?? "", /--kubeconfig/);
  const missing = await runClusterChecks({ settings: defaultSettings, kubeconfig: "/nonexistent/kubeconfig" });
  assert.equal(missing.length, 1);
  assert.match(missing[0].evidence, /could not load the kubeconfig: .*ENOENT/);
});

test("a reader refused by the API server is quoted in the server's words, not the client's dump", async () => {
  const { defineCheck } = await import("./check.js");
  const body = JSON.stringify({ kind: "Status", message: 'namespaces "gone" not found', code: 404 });
  const check = defineCheck<string, undefined>({
    id: "x",
    title: "X",
    read: async () => {
      throw new ApiException(404, "Unknown API Status Code!", body, { "content-type": "application/json" });
    },
    judge: () => ({ status: "pass", evidence: "" }),
  });
  const result = await check.run(undefined);
  assert.equal(result.status, "fail");
  assert.equal(result.evidence, 'could not read: namespaces "gone" not found');
});
