/**
 * The doctor's trial of the supervisor Pod. A dry run (cluster-checks.ts)
 * never reaches a node, so it cannot say that the node cannot pull the
 * supervisor image, that its container runtime lacks a handler, that no node
 * can take the Pod, or that a CVM's image is out of reach from inside the
 * cluster. The trial creates one real Pod, built by the provider's own spec
 * builder as a CVM's Pod (image, security context, volumes, the installation's
 * registries and credentials), whose command is `cvm supervisor probe`
 * (src/supervisor/image-probe.ts); it watches the Pod and its events for a
 * bounded time, then always deletes it (and its Secret). A pure judge turns
 * what happened into a verdict.
 */

import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { CoreV1Api, CoreV1Event, V1Pod, V1Secret } from "@kubernetes/client-node";
import type { RegistryCredentials } from "../core/environment.js";
import type { InfrastructureSettings } from "../core/settings.js";
import { apiMessage, isNotFound } from "../kubernetes/index.js";
import { labels, objectNames, supervisorContainer } from "../providers/kubernetes/names.js";
import {
  defaultSupervisorImage,
  environmentSecretSpec,
  type PodOptions,
  supervisorPodSpec,
} from "../providers/kubernetes/pod-spec.js";
import { decodeProbeVerdict, type ProbeVerdict, probeCommand } from "../supervisor/pod-contract.js";
import { fail, notApplicable, pass, type Verdict } from "./check.js";

export const trialDefaults = { timeoutSeconds: 120, pollMs: 1000, unschedulableGraceSeconds: 15 };

// ---------------------------------------------------------------- the Pod

export interface TrialRequest {
  /** The trial's id: its Pod and Secret are named as an environment of this id would be. */
  id: string;
  images: string[];
  timeoutSeconds: number;
  installationId?: string;
  /** The Pod options of the installation (installationPodOptions): supervisor image, insecure registries. */
  podOptions: Pick<PodOptions, "supervisorImage" | "insecureRegistries">;
  /** A Secret of the trial's holds registry credentials, mounted as a CVM's would be. */
  registrySecret: boolean;
}

/** The size the trial asks for: the smallest a CVM may be, but room for an engine to start. */
function trialSize(settings: InfrastructureSettings): { cpu: number; memoryGiB: number } {
  const { minCpu, maxCpu, minMemoryGiB, maxMemoryGiB } = settings.limits;
  return {
    cpu: Math.min(maxCpu, Math.max(minCpu, 0.5)),
    memoryGiB: Math.min(maxMemoryGiB, Math.max(minMemoryGiB, 0.5)),
  };
}

/** The stand-in environment the trial's objects are built for; its image is the one the credentials are for. */
function trialEnvironment(settings: InfrastructureSettings, request: TrialRequest) {
  return {
    id: request.id,
    name: "cvm-trial",
    image: request.images[0] ?? "cvm-trial",
    cvm: true,
    ...trialSize(settings),
    diskGiB: settings.limits.minDiskGiB,
    ownerEmail: "doctor@cvm.invalid",
  };
}

/** The trial's Secret: the registry credentials as a CVM's Secret holds them. */
export function trialSecretSpec(
  settings: InfrastructureSettings,
  request: TrialRequest,
  credentials: RegistryCredentials,
): V1Secret {
  const secret = environmentSecretSpec(trialEnvironment(settings, request), credentials);
  return { ...secret, metadata: { ...secret.metadata, labels: trialLabels(request) } };
}

function trialLabels(request: Pick<TrialRequest, "installationId">): Record<string, string> {
  return {
    [labels.trial]: "true",
    ...(request.installationId ? { [labels.installation]: request.installationId } : {}),
  };
}

/**
 * A CVM's Pod, as the provider builds it, made a trial: the probe for a
 * command, an emptyDir for the home claim (a trial has no home), no readiness
 * probe, a deadline the kubelet enforces should nobody delete it, and labels
 * that mark it a trial (not `dev.cvm/managed`: the provider's watch and
 * reconcile never see it).
 */
export function trialPodSpec(settings: InfrastructureSettings, request: TrialRequest): V1Pod {
  const pod = supervisorPodSpec(trialEnvironment(settings, request), settings, {
    ...request.podOptions,
    registrySecret: request.registrySecret,
    stopTimeoutSeconds: 5,
  });
  const spec = pod.spec!;
  const container = spec.containers[0];
  return {
    ...pod,
    metadata: { ...pod.metadata, labels: trialLabels(request) },
    spec: {
      ...spec,
      activeDeadlineSeconds: request.timeoutSeconds + 30,
      containers: [{ ...container, command: probeCommand(request.images), readinessProbe: undefined }],
      volumes: (spec.volumes ?? []).map((volume) =>
        volume.persistentVolumeClaim ? { name: volume.name, emptyDir: {} } : volume,
      ),
    },
  };
}

// ---------------------------------------------------------------- what happened

export interface TrialEvent {
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
}

export interface TrialEvidence {
  namespace: string;
  pod: string;
  supervisorImage: string;
  images: string[];
  /** Why no trial was made: the dry run was refused, so the Pod would be too. */
  skipped?: string;
  node?: string;
  phase?: string;
  /** PodScheduled=False: the scheduler's reason and message. */
  unscheduled?: { reason?: string; message?: string };
  waiting?: { reason?: string; message?: string };
  terminated?: { exitCode: number; reason?: string; message?: string };
  events: TrialEvent[];
  seconds: number;
  timeoutSeconds: number;
  /** The wait ended without a verdict from the Pod. */
  timedOut: boolean;
  /** The Pod vanished under the trial (someone deleted it). */
  vanished?: boolean;
  /** The run was interrupted (the doctor stopped) before the Pod answered. */
  interrupted?: boolean;
}

const imagePullReasons = new Set(["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"]);
const containerReasons = new Set(["CreateContainerConfigError", "CreateContainerError", "RunContainerError"]);

const sandboxEvent = (e: TrialEvidence) => e.events.find((event) => event.reason === "FailedCreatePodSandBox");
/** The kubelet's own words on a failed pull: "Failed to pull image ...", before its "Error: ErrImagePull". */
const pullEvent = (e: TrialEvidence) => {
  const failed = e.events.filter((event) => event.reason === "Failed");
  return (
    failed.find((event) => /^Failed to pull/i.test(event.message ?? "")) ??
    failed.find((event) => /pull/i.test(event.message ?? ""))
  );
};
const schedulingEvent = (e: TrialEvidence) => e.events.find((event) => event.reason === "FailedScheduling");

/** Whether the trial has its answer: the wait stops at the first of these. */
export function trialSettled(e: TrialEvidence): boolean {
  return (
    e.terminated !== undefined ||
    imagePullReasons.has(e.waiting?.reason ?? "") ||
    containerReasons.has(e.waiting?.reason ?? "") ||
    sandboxEvent(e) !== undefined
  );
}

/** What the Pod is doing, for the progress of a check that waits on it. */
export function trialStage(e: TrialEvidence): string {
  if (e.terminated) return `the probe finished on node ${e.node}`;
  if (e.waiting?.reason) return `on node ${e.node}: ${e.waiting.reason}`;
  if (e.phase === "Running") return `running on node ${e.node}: the probe starts the engine and asks the registries`;
  if (e.node) return `scheduled on node ${e.node}: pulling ${e.supervisorImage}`;
  if (e.unscheduled?.reason) return `not scheduled yet: ${e.unscheduled.message ?? e.unscheduled.reason}`;
  return `waiting for a node to take Pod ${e.pod}`;
}

// ---------------------------------------------------------------- the judge

const where = (e: TrialEvidence) => `trial Pod ${e.pod} in namespace ${e.namespace}`;
const onNode = (e: TrialEvidence) => (e.node ? ` on node ${e.node}` : "");
const warnings = (e: TrialEvidence) =>
  e.events
    .filter((event) => event.type === "Warning")
    .map((event) => `${event.reason}: ${event.message}`)
    .join("; ");

const imageRemedies: Record<string, string> = {
  auth: "give the environment registry credentials the registry accepts (the same a CVM of that image is created with)",
  unreachable:
    "let the cluster's nodes reach the registry (DNS, egress rules, a proxy), or mirror the image to a registry they reach",
  tls: "for a registry on plain HTTP, list it in environments.insecureRegistries (CVM_INSECURE_REGISTRIES); else make its certificate trusted",
  "not-found": "check the image reference: the registry has no such repository or tag",
};
const otherImageRemedy = "check that the registry answers from inside the cluster";

function judgeProbe(e: TrialEvidence, probe: ProbeVerdict): Verdict {
  const ran = `${where(e)} ran${onNode(e)} in ${e.seconds} s`;
  if (probe.engine) {
    return fail(
      `${ran}, but the supervisor's engine did not start: ${probe.engine}`,
      "The node must let a privileged container run its own dockerd with user namespaces (see docs/architecture.md, the supervisor Pod); read the engine's words above for which part it refused.",
    );
  }
  const runtimes = `engine answered in ${probe.engineMs} ms, runtimes ${probe.runtimes?.join(", ") || "none"}`;
  if (probe.runtime) {
    return fail(
      `${ran}; ${runtimes}; the isolation runtime is missing${onNode(e)}: ${probe.runtime}`,
      `Install sysbox on the nodes CVMs run on (\`cvm cluster plan\` prints the steps; ${e.node ?? "this node"} has none), or set the runtime to auto or userns.`,
    );
  }
  const failed = probe.images.filter((i) => i.failure);
  const reached = probe.images
    .filter((i) => i.digest)
    .map((i) => `${i.image} (${i.digest?.slice(0, 19)})`)
    .join(", ");
  if (failed.length > 0) {
    const kinds = [...new Set(failed.map((i) => i.kind ?? "other"))];
    return fail(
      `${ran}; ${runtimes}; ${failed.map((i) => `image ${i.image} unreachable from inside the cluster: ${i.kind}: ${i.failure}`).join("; ")}${reached ? `; reached: ${reached}` : ""}`,
      `A CVM of ${failed.map((i) => i.image).join(", ")} would fail its pull: ${kinds.map((k) => imageRemedies[k] ?? otherImageRemedy).join("; ")}.`,
    );
  }
  return pass(
    `${ran}: supervisor image ${e.supervisorImage} pulled, ${runtimes}${probe.images.length > 0 ? `; images reached: ${reached}` : "; no CVM images to ask for (give --image, or set warm pools)"}`,
  );
}

interface TrialCase {
  matches: (e: TrialEvidence) => boolean;
  verdict: (e: TrialEvidence) => Verdict;
}

/** The first matching case decides; the order is how far the Pod got, furthest first. */
const trialCases: TrialCase[] = [
  {
    matches: (e) => e.skipped !== undefined,
    verdict: (e) => notApplicable(`no trial Pod: ${e.skipped}`),
  },
  {
    matches: (e) => decodeProbeVerdict(e.terminated?.message) !== undefined,
    verdict: (e) => judgeProbe(e, decodeProbeVerdict(e.terminated?.message)!),
  },
  {
    matches: (e) => imagePullReasons.has(e.waiting?.reason ?? "") || pullEvent(e) !== undefined,
    verdict: (e) =>
      fail(
        `${where(e)}: the node${e.node ? ` ${e.node}` : ""} cannot pull the supervisor image ${e.supervisorImage}: ${e.waiting?.reason ?? "Failed"}: ${pullEvent(e)?.message ?? e.waiting?.message ?? ""}`,
        `Push the supervisor image where the nodes can pull it (npm run images -- supervisor, with the registry the nodes use), check its name and tag (CVM_SUPERVISOR_IMAGE; the chart's supervisor image values), and give the namespace an image pull secret if the registry is private.`,
      ),
  },
  {
    matches: (e) => sandboxEvent(e) !== undefined,
    verdict: (e) => {
      const message = sandboxEvent(e)?.message ?? "";
      const handler = /no runtime for "([^"]+)"|RuntimeHandler "([^"]+)"|runtime handler "?([^"\s]+)/.exec(message);
      const name = handler?.slice(1).find(Boolean);
      return fail(
        `${where(e)}: the node${e.node ? ` ${e.node}` : ""} could not create the Pod's sandbox${name ? `: its container runtime has no handler "${name}"` : ""}: ${message}`,
        name
          ? `Install the runtime behind handler "${name}" on the nodes CVMs run on (and its RuntimeClass), or run CVMs on nodes that have it.`
          : "Read the kubelet's message above: the node's container runtime or network plugin refused the Pod.",
      );
    },
  },
  {
    matches: (e) => e.unscheduled?.reason === "Unschedulable" || (e.node === undefined && !!schedulingEvent(e)),
    verdict: (e) =>
      fail(
        `${where(e)}: no node can take it: ${e.unscheduled?.message ?? schedulingEvent(e)?.message ?? e.unscheduled?.reason}`,
        "Add nodes with room for the smallest CVM (or lower the limits' minimums), and make sure a CVM's Pod tolerates the nodes' taints; the scheduler's message above says which nodes refused and why.",
      ),
  },
  {
    matches: (e) => containerReasons.has(e.waiting?.reason ?? ""),
    verdict: (e) =>
      fail(
        `${where(e)}${onNode(e)}: the supervisor container could not be created: ${e.waiting?.reason}: ${e.waiting?.message ?? ""}`,
        "Read the kubelet's message above: the node refused the supervisor container's security context or a volume.",
      ),
  },
  {
    matches: (e) => e.terminated !== undefined,
    verdict: (e) =>
      fail(
        `${where(e)}${onNode(e)}: the supervisor container ended with exit code ${e.terminated?.exitCode} (${e.terminated?.reason ?? "no reason"}) without the probe's answer: ${e.terminated?.message?.trim() || "no message"}`,
        "The supervisor image must be the one of this cvm version (it has `cvm supervisor probe`): build and push it with npm run images -- supervisor.",
      ),
  },
  {
    matches: (e) => e.interrupted === true,
    verdict: (e) =>
      fail(
        `${where(e)} was deleted after ${e.seconds} s: the checks were interrupted before it answered`,
        "Run the checks again and let the trial finish.",
      ),
  },
  {
    matches: (e) => e.vanished === true,
    verdict: (e) =>
      fail(
        `${where(e)} was deleted by someone else before it answered`,
        "Run the checks again; if it keeps vanishing, look for a controller that removes Pods in this namespace.",
      ),
  },
  {
    matches: (e) => e.phase === "Running",
    verdict: (e) =>
      fail(
        `${where(e)} ran${onNode(e)} for ${e.seconds} s without answering within the ${e.timeoutSeconds} s the trial waits`,
        "The supervisor's engine is slow to start on this node, or stuck: read the Pod's log in a trial of your own (kubectl run with the supervisor image), and the node's load.",
      ),
  },
  {
    matches: () => true,
    verdict: (e) =>
      fail(
        `${where(e)} still ${e.phase ?? "not created"}${onNode(e)} after ${e.seconds} s${warnings(e) ? `: ${warnings(e)}` : ""}`,
        "Read the Pod's events above; a slow image pull may need a longer wait, or the image pre-pulled on the nodes.",
      ),
  },
];

export function judgeTrial(e: TrialEvidence): Verdict {
  return trialCases.find((c) => c.matches(e))!.verdict(e);
}

// ---------------------------------------------------------------- running it

export interface TrialContext {
  core: CoreV1Api;
  namespace: string;
  settings: InfrastructureSettings;
  images: string[];
  installationId?: string;
  podOptions: Pick<PodOptions, "supervisorImage" | "insecureRegistries">;
  credentials?: RegistryCredentials;
  timeoutSeconds?: number;
  /** Ends the wait early (the doctor interrupted); the Pod is deleted all the same. */
  signal?: AbortSignal;
  /** What the trial is waiting on, as it changes. */
  note?: (text: string) => void;
}

/** The Pod's status and events, as the judge reads them. */
export function readTrialPod(
  pod: V1Pod | undefined,
  events: CoreV1Event[],
  base: Omit<TrialEvidence, "events" | "node" | "phase">,
): TrialEvidence {
  const status = pod?.status;
  const container = status?.containerStatuses?.find((c) => c.name === supervisorContainer);
  const scheduled = status?.conditions?.find((c) => c.type === "PodScheduled");
  const terminated = container?.state?.terminated;
  const uid = pod?.metadata?.uid;
  return {
    ...base,
    node: pod?.spec?.nodeName,
    phase: status?.phase,
    ...(scheduled?.status === "False" ? { unscheduled: { reason: scheduled.reason, message: scheduled.message } } : {}),
    ...(container?.state?.waiting
      ? { waiting: { reason: container.state.waiting.reason, message: container.state.waiting.message } }
      : {}),
    ...(terminated
      ? { terminated: { exitCode: terminated.exitCode, reason: terminated.reason, message: terminated.message } }
      : {}),
    events: events
      .filter((event) => !uid || !event.involvedObject.uid || event.involvedObject.uid === uid)
      .map((event) => ({ type: event.type, reason: event.reason, message: event.message, count: event.count })),
  };
}

async function ignoringMissing(work: Promise<unknown>): Promise<void> {
  await work.catch((error) => {
    if (!isNotFound(error)) throw error;
  });
}

/** Deletes the trial's Pod and Secret (named alike), now. */
async function removeTrial(core: CoreV1Api, namespace: string, name: string): Promise<void> {
  await Promise.all([
    ignoringMissing(core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 })),
    ignoringMissing(core.deleteNamespacedSecret({ name, namespace })),
  ]);
}

/**
 * Trial Pods a doctor left when it died: older than any trial lasts. A
 * younger one may be another doctor's, running now, and is left to it.
 */
export async function removeLeftoverTrials(
  core: CoreV1Api,
  namespace: string,
  timeoutSeconds: number,
  now = Date.now(),
): Promise<string[]> {
  const pods = await core.listNamespacedPod({ namespace, labelSelector: `${labels.trial}=true` });
  const stale = pods.items
    .filter((pod) => now - (pod.metadata?.creationTimestamp?.getTime() ?? now) > (timeoutSeconds + 60) * 1000)
    .map((pod) => pod.metadata?.name ?? "")
    .filter(Boolean);
  for (const name of stale) await removeTrial(core, namespace, name);
  return stale;
}

/** Creates the trial Pod, watches it until it answers or the time is up, and always deletes it. */
export async function runTrial(context: TrialContext): Promise<TrialEvidence> {
  const { core, namespace } = context;
  const timeoutSeconds = context.timeoutSeconds ?? trialDefaults.timeoutSeconds;
  const left = await removeLeftoverTrials(core, namespace, timeoutSeconds);
  if (left.length > 0) context.note?.(`removed trial Pods an earlier run left: ${left.join(", ")}`);
  const id = `trial-${randomBytes(4).toString("hex")}`;
  const name = objectNames(id).pod;
  const request: TrialRequest = {
    id,
    images: context.images,
    timeoutSeconds,
    installationId: context.installationId,
    podOptions: context.podOptions,
    registrySecret: context.credentials !== undefined,
  };
  const supervisorImage = context.podOptions.supervisorImage ?? defaultSupervisorImage;
  const base = { namespace, pod: name, supervisorImage, images: context.images, timeoutSeconds };
  const begun = Date.now();
  const seconds = () => Math.round((Date.now() - begun) / 100) / 10;
  try {
    // The Pod first: a Secret it names is waited for by the kubelet, and a crash in between leaves only the Pod, found by its labels.
    const created = await core.createNamespacedPod({ namespace, body: trialPodSpec(context.settings, request) });
    if (context.credentials) {
      await core.createNamespacedSecret({
        namespace,
        body: trialSecretSpec(context.settings, request, context.credentials),
      });
    }
    context.note?.(`created trial Pod ${name}; waiting up to ${timeoutSeconds} s for it to answer`);
    let evidence = readTrialPod(created, [], { ...base, seconds: 0, timedOut: false });
    let told = "";
    let unschedulableSince: number | undefined;
    while (seconds() < timeoutSeconds && !context.signal?.aborted) {
      const pod = await core.readNamespacedPod({ name, namespace }).catch((error) => {
        if (isNotFound(error)) return undefined;
        throw error;
      });
      const events = await core
        .listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${name}` })
        .then((list) => list.items)
        .catch(() => [] as CoreV1Event[]);
      evidence = readTrialPod(pod, events, { ...base, seconds: seconds(), timedOut: false, vanished: !pod });
      if (!pod || trialSettled(evidence)) return evidence;
      const unschedulable = evidence.unscheduled?.reason === "Unschedulable";
      unschedulableSince = unschedulable ? (unschedulableSince ?? Date.now()) : undefined;
      // An autoscaler may add a node for it: the scheduler's no stands once it has held a while.
      if (unschedulableSince && Date.now() - unschedulableSince > trialDefaults.unschedulableGraceSeconds * 1000) {
        return evidence;
      }
      const stage = trialStage(evidence);
      if (stage !== told) {
        told = stage;
        context.note?.(stage);
      }
      await sleep(trialDefaults.pollMs, undefined, { signal: context.signal }).catch(() => undefined);
    }
    if (context.signal?.aborted) return { ...evidence, seconds: seconds(), interrupted: true };
    return { ...evidence, seconds: seconds(), timedOut: true };
  } finally {
    await removeTrial(core, namespace, name).catch((error) =>
      context.note?.(`could not delete trial Pod ${name}: ${apiMessage(error)} (the next run removes it)`),
    );
  }
}
