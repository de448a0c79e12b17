/**
 * Checks of a Kubernetes cluster that is to run CVMs, asked of its API server:
 * the server's version, every node's kernel and OS image, whether the
 * namespace admits the supervisor Pod (a server-side dry run, so Pod Security
 * Admission and any policy engine answer for themselves), Istio's sidecar
 * injection, and the RBAC the provider needs.
 */

import {
  AdmissionregistrationV1Api,
  ApiException,
  AuthorizationV1Api,
  CoreV1Api,
  type KubeConfig,
  VersionApi,
} from "@kubernetes/client-node";
import type { CheckResult } from "../api/contract.js";
import type { RegistryCredentials } from "../core/environment.js";
import { type CvmRuntime, resolveRuntime } from "../core/isolation-runtime.js";
import type { InfrastructureSettings } from "../core/settings.js";
import { apiMessage, defaultNamespace, loadKubeConfig } from "../kubernetes/index.js";
import { installationPodOptions } from "../providers/kubernetes/index.js";
import { defaultSupervisorImage, type PodOptions } from "../providers/kubernetes/pod-spec.js";
import {
  type AnyCheck,
  defineCheck,
  errorText,
  fail,
  type OnCheckProgress,
  pass,
  runChecks,
  severity,
  type Verdict,
  warn,
} from "./check.js";
import type { OsRelease } from "./host-evidence.js";
import { judgeKernel, judgeOs } from "./local-checks.js";
import { supervisorPodForDryRun, supervisorPodWords } from "./supervisor-pod.js";
import { judgeTrial, runTrial, type TrialEvidence } from "./supervisor-trial.js";
import { atLeast, parseVersion, version } from "./versions.js";

export interface ClusterApis {
  core: CoreV1Api;
  version: VersionApi;
  authorization: AuthorizationV1Api;
  admission: AdmissionregistrationV1Api;
}

export interface ClusterContext {
  settings: InfrastructureSettings;
  runtime: CvmRuntime;
  namespace: string;
  apis: ClusterApis;
  /** The supervisor Pod's dry run, made once and shared by the checks that read it. */
  dryRun: () => Promise<DryRunEvidence>;
  trial: TrialOptions;
  /** What a long check waits on, for the progress of the run. */
  note: (id: string, text: string) => void;
}

/** What the trial Pod is made with, beside the settings. */
export interface TrialOptions {
  /** CVM images to ask for beside the warm pools' (`cvm doctor --image`). */
  images?: string[];
  /** The registry credentials a CVM of those images would get. */
  credentials?: RegistryCredentials;
  /** Instead of the installation's Pod options (installationPodOptions: cvm server's environment). */
  podOptions?: Pick<PodOptions, "supervisorImage" | "insecureRegistries">;
  installationId?: string;
  timeoutSeconds?: number;
  /** Why no trial is made this time (a forced enable does not wait on one). */
  skip?: string;
  signal?: AbortSignal;
}

const kubeconfigRemedy =
  "Point cvm at the cluster: --kubeconfig FILE (or KUBECONFIG), or run inside the cluster with a ServiceAccount.";

// ---------------------------------------------------------------- server version

const kubernetesMinimum = version("1.17");

export function judgeServerVersion(gitVersion: string): Verdict {
  const evidence = `server gitVersion ${gitVersion}`;
  const parsed = parseVersion(gitVersion);
  if (!parsed) return fail(`${evidence} is not a version`, "Run Kubernetes 1.17 or newer.");
  if (!atLeast(parsed, kubernetesMinimum))
    return fail(`${evidence}; CVMs need 1.17 or newer`, "Upgrade the cluster to 1.17 or newer.");
  return pass(evidence);
}

// ---------------------------------------------------------------- nodes

export interface NodeEvidence {
  name: string;
  kernelVersion: string;
  osImage: string;
}

interface OsImageRule {
  pattern: RegExp;
  id: string;
}

/** nodeInfo.osImage as clouds print it, to an os-release ID and VERSION_ID. */
const osImageRules: OsImageRule[] = [
  { pattern: /^Ubuntu (\d+\.\d+)/, id: "ubuntu" },
  { pattern: /^Debian GNU\/Linux (\d+)/, id: "debian" },
  { pattern: /^Container-Optimized OS/, id: "cos" },
  { pattern: /^Bottlerocket OS (\S+)/, id: "bottlerocket" },
  { pattern: /^Flatcar Container Linux.*?(\d[\d.]*)/, id: "flatcar" },
  { pattern: /^Talos/, id: "talos" },
  { pattern: /^Amazon Linux (\d+)/, id: "amzn" },
  { pattern: /^(?:CBL-Mariner|Azure Linux)\/Linux/, id: "mariner" },
  { pattern: /^Fedora/, id: "fedora" },
  { pattern: /^(?:Red Hat Enterprise Linux|Rocky Linux|AlmaLinux|CentOS)/, id: "rhel" },
];

export function osFromImage(osImage: string): OsRelease {
  const rule = osImageRules.find((r) => r.pattern.test(osImage));
  const match = rule?.pattern.exec(osImage);
  return {
    id: rule?.id ?? "unknown",
    versionId: match?.[1] ?? "",
    prettyName: osImage,
    source: `osImage "${osImage}"`,
  };
}

/** One verdict for many nodes: the worst node decides, and every node's line is evidence. */
function judgeEachNode(nodes: NodeEvidence[], judgeOne: (node: NodeEvidence) => Verdict): Verdict {
  if (nodes.length === 0) {
    return warn(
      "the cluster has no nodes",
      "Add nodes (a node pool) before turning CVMs on, then run the checks again.",
    );
  }
  const verdicts = nodes.map((node) => ({ node, verdict: judgeOne(node) }));
  const worst = verdicts.reduce((a, b) => (severity[b.verdict.status] > severity[a.verdict.status] ? b : a));
  return {
    status: worst.verdict.status,
    evidence: verdicts.map(({ node, verdict }) => `${node.name}: ${verdict.status}: ${verdict.evidence}`).join("\n"),
    remedy: worst.verdict.remedy && `${worst.node.name} and any like it: ${worst.verdict.remedy}`,
  };
}

export function judgeNodeKernels(nodes: NodeEvidence[], runtime: CvmRuntime): Verdict {
  return judgeEachNode(nodes, (node) => judgeKernel(node.kernelVersion, runtime, osFromImage(node.osImage)));
}

export function judgeNodeOs(nodes: NodeEvidence[], runtime: CvmRuntime): Verdict {
  return judgeEachNode(nodes, (node) => judgeOs(osFromImage(node.osImage), runtime));
}

// ---------------------------------------------------------------- admission of the supervisor Pod

export interface DryRunEvidence {
  namespace: string;
  /** The Pod as cvm would create it, in words. */
  asked: string;
  admitted: boolean;
  /** The admission chain's refusal, verbatim, and its HTTP status. */
  message?: string;
  code?: number;
  /** Warning headers (Pod Security Admission's `warn` mode, deprecations). */
  warnings: string[];
  /** Containers in the Pod the dry run returned, after mutating webhooks. */
  containers: string[];
}

export async function dryRunSupervisorPod(
  context: Pick<ClusterContext, "settings" | "namespace" | "apis">,
): Promise<DryRunEvidence> {
  const id = `doctor-${Date.now().toString(36)}`;
  const body = supervisorPodForDryRun(context.settings, id);
  const asked = supervisorPodWords(context.settings);
  try {
    const response = await context.apis.core.createNamespacedPodWithHttpInfo({
      namespace: context.namespace,
      body,
      dryRun: "All",
    });
    const pod = response.data;
    return {
      namespace: context.namespace,
      asked,
      admitted: true,
      warnings: warningsFrom(response.headers),
      containers: [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name),
    };
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    return {
      namespace: context.namespace,
      asked,
      admitted: false,
      code: error.code,
      message: apiMessage(error),
      warnings: warningsFrom(error.headers ?? {}),
      containers: [],
    };
  }
}

/** `Warning: 299 - "text"` headers to their texts. */
function warningsFrom(headers: Record<string, string>): string[] {
  const raw = Object.entries(headers).find(([key]) => key.toLowerCase() === "warning")?.[1];
  if (!raw) return [];
  return [...raw.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)].map((m) => m[1].replace(/\\"/g, '"'));
}

interface AdmissionRefusal {
  matches: (e: DryRunEvidence) => boolean;
  remedy: (namespace: string) => string;
}

/** Why the API server refused the dry run decides what the user does about it; admission is the last resort. */
const admissionRemedies: AdmissionRefusal[] = [
  {
    matches: (e) => e.code === 404,
    remedy: (ns) =>
      `Create the namespace cvm uses (kubectl create namespace ${ns}), or point cvm at another with --namespace.`,
  },
  {
    matches: (e) => e.code === 403 && /cannot create resource "pods"/.test(e.message ?? ""),
    remedy: (ns) => `Let cvm's account create Pods in ${ns} (the Helm chart's Role in deploy/ does).`,
  },
  {
    matches: () => true,
    remedy: (ns) =>
      `Let namespace ${ns} admit privileged Pods with hostPath mounts: kubectl label namespace ${ns} pod-security.kubernetes.io/enforce=privileged --overwrite (and exempt it from any policy engine); where only privileged itself is forbidden, list capabilities instead in the settings.`,
  },
];

export function judgeAdmission(e: DryRunEvidence): Verdict {
  const what = `dry run of the supervisor Pod (${e.asked}) in namespace ${e.namespace}`;
  if (!e.admitted) {
    const refusal = admissionRemedies.find((r) => r.matches(e))!;
    return fail(`${what}: ${e.message}`, refusal.remedy(e.namespace));
  }
  if (e.warnings.length > 0) {
    return warn(
      `${what}: admitted, with warnings: ${e.warnings.join("; ")}`,
      `The namespace admits the Pod today but warns; a stricter enforce level would refuse CVMs: label ${e.namespace} pod-security.kubernetes.io/warn=privileged once this is intended.`,
    );
  }
  return pass(`${what}: admitted`);
}

// ---------------------------------------------------------------- Istio

export interface IstioEvidence {
  namespace: string;
  namespaceLabels: Record<string, string>;
  /** Names of MutatingWebhookConfigurations that look like Istio's injector; a string when they could not be listed. */
  injectors: string[] | string;
  /** Containers the dry-run Pod came back with. */
  dryRunContainers: string[];
}

const istioInjector = /istio-sidecar-injector|istio-revision-tag/;
const sidecarNames = ["istio-proxy", "istio-init", "istio-validation"];

export function judgeIstio(e: IstioEvidence): Verdict {
  const labels = Object.entries(e.namespaceLabels)
    .filter(([key]) => key === "istio-injection" || key === "istio.io/rev")
    .map(([key, value]) => `${key}=${value}`);
  const injectors =
    typeof e.injectors === "string" ? `(could not list: ${e.injectors})` : e.injectors.join(", ") || "none";
  const sidecars = e.dryRunContainers.filter((c) => sidecarNames.includes(c));
  const evidence = `namespace ${e.namespace} labels: ${labels.join(", ") || "no istio labels"}; injector webhooks: ${injectors}; dry-run Pod containers: ${e.dryRunContainers.join(", ") || "(not admitted)"}`;
  const remedy = `Turn sidecar injection off for cvm's namespace: kubectl label namespace ${e.namespace} istio-injection=disabled --overwrite (and remove istio.io/rev); a proxy in front of the supervisor breaks the CVM's networking.`;
  const injecting = labels.some((l) => l === "istio-injection=enabled" || l.startsWith("istio.io/rev="));
  if (injecting || sidecars.length > 0) return fail(evidence, remedy);
  const disabled = e.namespaceLabels["istio-injection"] === "disabled";
  if (Array.isArray(e.injectors) && e.injectors.length > 0 && !disabled) {
    return warn(`${evidence}; a cluster-wide injector is installed`, remedy);
  }
  return pass(evidence);
}

// ---------------------------------------------------------------- RBAC

export interface AccessQuestion {
  verb: string;
  resource: string;
  subresource?: string;
}

export interface AccessAnswer extends AccessQuestion {
  allowed: boolean;
  reason?: string;
}

/**
 * What the Kubernetes provider does in its namespace, and no more: the same
 * rules as the Helm chart's Role (deploy/helm/cvm/templates/rbac.yaml; a
 * test keeps the two equal).
 */
export const providerRules: { resource: string; verbs: string[] }[] = [
  { resource: "pods", verbs: ["get", "list", "watch", "create", "delete"] },
  // create for the exec upgrade; get for API servers that authorize its WebSocket GET.
  { resource: "pods/exec", verbs: ["create", "get"] },
  { resource: "secrets", verbs: ["get", "create", "update", "delete"] },
  { resource: "persistentvolumeclaims", verbs: ["get", "create", "patch", "delete"] },
  // The doctor's trial Pod (supervisor-trial.ts) reads what the scheduler and the kubelet said of it.
  { resource: "events", verbs: ["list"] },
];

export const providerAccess: AccessQuestion[] = providerRules.flatMap(({ resource, verbs }) => {
  const [name, subresource] = resource.split("/");
  return verbs.map((verb) => (subresource ? { verb, resource: name, subresource } : { verb, resource: name }));
});

const accessWords = (a: AccessQuestion) => `${a.verb} ${a.resource}${a.subresource ? `/${a.subresource}` : ""}`;

export function judgeAccess(answers: AccessAnswer[], namespace: string): Verdict {
  const denied = answers.filter((a) => !a.allowed);
  if (denied.length === 0) return pass(`allowed in ${namespace}: ${answers.map(accessWords).join(", ")}`);
  return fail(
    `denied in ${namespace}: ${denied.map((a) => `${accessWords(a)}${a.reason ? ` (${a.reason})` : ""}`).join(", ")}`,
    `Bind cvm's account to a Role in ${namespace} that grants these verbs (the Helm chart in deploy/ creates it).`,
  );
}

async function askAccess(context: ClusterContext): Promise<AccessAnswer[]> {
  return Promise.all(
    providerAccess.map(async (question) => {
      const review = await context.apis.authorization.createSelfSubjectAccessReview({
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SelfSubjectAccessReview",
          spec: { resourceAttributes: { namespace: context.namespace, ...question } },
        },
      });
      return { ...question, allowed: review.status?.allowed === true, reason: review.status?.reason || undefined };
    }),
  );
}

// ---------------------------------------------------------------- the trial Pod

/**
 * The images a CVM here will be made from, as far as the checks know them:
 * those given first (the credentials given are the first one's registry's), then the warm pools'.
 */
export function trialImages(settings: InfrastructureSettings, given: string[] = []): string[] {
  return [...new Set([...given, ...settings.pools.map((pool) => pool.image)])];
}

async function readTrial(context: ClusterContext): Promise<TrialEvidence> {
  const { trial, namespace } = context;
  const images = trialImages(context.settings, trial.images);
  const installed = installationPodOptions({});
  const podOptions = {
    supervisorImage: trial.podOptions?.supervisorImage ?? installed.supervisorImage,
    insecureRegistries: trial.podOptions?.insecureRegistries ?? installed.insecureRegistries,
  };
  const skipped = (why: string): TrialEvidence => ({
    namespace,
    pod: "",
    supervisorImage: podOptions.supervisorImage ?? defaultSupervisorImage,
    images,
    skipped: why,
    events: [],
    seconds: 0,
    timeoutSeconds: 0,
    timedOut: false,
  });
  const dryRun = await context.dryRun();
  if (!dryRun.admitted) {
    return skipped(`the namespace refuses the supervisor Pod (see supervisor-admission): ${dryRun.message}`);
  }
  if (trial.skip) return skipped(trial.skip);
  if (trial.signal?.aborted) return skipped("the checks were interrupted before it");
  return runTrial({
    core: context.apis.core,
    namespace,
    settings: context.settings,
    images,
    installationId: trial.installationId,
    podOptions,
    credentials: trial.credentials,
    timeoutSeconds: trial.timeoutSeconds,
    signal: trial.signal,
    note: (text) => context.note("supervisor-trial", text),
  });
}

// ---------------------------------------------------------------- the table

export const clusterChecks: AnyCheck<ClusterContext>[] = [
  defineCheck({
    id: "cluster-version",
    title: "Kubernetes version",
    read: async (context) => (await context.apis.version.getCode()).gitVersion,
    judge: judgeServerVersion,
    unreadable: kubeconfigRemedy,
  }),
  defineCheck({
    id: "node-kernel",
    title: "Every node's kernel",
    read: readNodes,
    judge: (nodes, context) => judgeNodeKernels(nodes, context.runtime),
    unreadable:
      "Let cvm's account list nodes (a ClusterRole with get/list on nodes), or run the doctor as a cluster admin.",
  }),
  defineCheck({
    id: "node-os",
    title: "Every node's OS image",
    read: readNodes,
    judge: (nodes, context) => judgeNodeOs(nodes, context.runtime),
    unreadable:
      "Let cvm's account list nodes (a ClusterRole with get/list on nodes), or run the doctor as a cluster admin.",
  }),
  defineCheck({
    id: "supervisor-admission",
    title: "The namespace admits the supervisor Pod",
    read: (context) => context.dryRun(),
    judge: judgeAdmission,
    unreadable: kubeconfigRemedy,
  }),
  defineCheck({
    id: "istio",
    title: "No Istio sidecar injection",
    read: readIstio,
    judge: judgeIstio,
    unreadable: kubeconfigRemedy,
  }),
  defineCheck({
    id: "rbac",
    title: "RBAC for the Kubernetes provider",
    read: askAccess,
    judge: (answers, context) => judgeAccess(answers, context.namespace),
    unreadable: kubeconfigRemedy,
  }),
  defineCheck({
    id: "supervisor-trial",
    title: "A supervisor Pod starts on a node and reaches the images",
    read: readTrial,
    judge: judgeTrial,
    unreadable:
      "Let cvm's account create and delete Pods and Secrets and list events in the namespace (the Helm chart's Role does), then run the checks again.",
  }),
];

async function readNodes(context: ClusterContext): Promise<NodeEvidence[]> {
  const list = await context.apis.core.listNode();
  return list.items.map((node) => ({
    name: node.metadata?.name ?? "(unnamed)",
    kernelVersion: node.status?.nodeInfo?.kernelVersion ?? "",
    osImage: node.status?.nodeInfo?.osImage ?? "",
  }));
}

async function readIstio(context: ClusterContext): Promise<IstioEvidence> {
  const namespace = await context.apis.core.readNamespace({ name: context.namespace });
  let injectors: string[] | string;
  try {
    const webhooks = await context.apis.admission.listMutatingWebhookConfiguration();
    injectors = webhooks.items.map((w) => w.metadata?.name ?? "").filter((name) => istioInjector.test(name));
  } catch (error) {
    injectors = apiMessage(error);
  }
  const dryRun = await context.dryRun();
  return {
    namespace: context.namespace,
    namespaceLabels: namespace.metadata?.labels ?? {},
    injectors,
    dryRunContainers: dryRun.admitted ? dryRun.containers : [],
  };
}

// ---------------------------------------------------------------- running them

export interface ClusterCheckOptions {
  settings: InfrastructureSettings;
  kubeconfig?: string;
  namespace?: string;
  trial?: TrialOptions;
}

export function clusterApis(config: KubeConfig): ClusterApis {
  return {
    core: config.makeApiClient(CoreV1Api),
    version: config.makeApiClient(VersionApi),
    authorization: config.makeApiClient(AuthorizationV1Api),
    admission: config.makeApiClient(AdmissionregistrationV1Api),
  };
}

export async function runClusterChecks(
  options: ClusterCheckOptions,
  onProgress?: OnCheckProgress,
): Promise<CheckResult[]> {
  let config: KubeConfig;
  try {
    config = loadKubeConfig(options.kubeconfig);
  } catch (error) {
    return [
      {
        id: "cluster-version",
        title: "Kubernetes version",
        status: "fail",
        evidence: `could not load the kubeconfig: ${errorText(error)}`,
        remedy: kubeconfigRemedy,
      },
    ];
  }
  const namespace = defaultNamespace(options);
  const base = {
    settings: options.settings,
    // The supervisor image's own engine runs CVMs on a cluster: its runtimes are not asked, so auto means userns.
    runtime: resolveRuntime(options.settings.runtime),
    namespace,
    apis: clusterApis(config),
  };
  let dryRun: Promise<DryRunEvidence> | undefined;
  const context: ClusterContext = {
    ...base,
    dryRun: () => (dryRun ??= dryRunSupervisorPod(base)),
    trial: options.trial ?? {},
    note: (id, text) => onProgress?.({ type: "note", id, text }),
  };
  return runChecks(clusterChecks, context, onProgress);
}
