/**
 * What a Pod says about its environment: a table from the Pod's phase,
 * conditions and container states to the stage of the environment's life.
 * Pure, so every case is tested without a cluster.
 */

import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";

export type PodStage =
  /** No Pod. */
  | "absent"
  /** Being deleted (stop, delete, rebuild). */
  | "terminating"
  /** Waiting for a node, or for the kubelet to pull and create. */
  | "pending"
  /** The container runs; the environment inside is not ready yet. */
  | "starting"
  /** Ready: the readiness probe (or the kubelet's simulation) passed. */
  | "running"
  /** It will not run: the reason says why, in the cluster's own words. */
  | "failed";

export interface PodView {
  stage: PodStage;
  /** Why, when the cluster said: the scheduler's message, the exit code, an image error. */
  reason?: string;
  node?: string;
}

/** Container waiting reasons that will not resolve by waiting (a wrong image, a bad spec). */
const hopelessWaiting = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
  "CrashLoopBackOff",
]);

function terminatedReason(status: V1ContainerStatus): string | undefined {
  const terminated = status.state?.terminated;
  if (!terminated) return undefined;
  const why = terminated.reason === "OOMKilled" ? "out of memory (OOMKilled)" : (terminated.reason ?? "exited");
  const message = terminated.message ? `: ${terminated.message.trim()}` : "";
  return `container ${status.name} ${why} with exit code ${terminated.exitCode}${message}`;
}

function waitingProblem(status: V1ContainerStatus): string | undefined {
  const waiting = status.state?.waiting;
  if (!waiting?.reason || !hopelessWaiting.has(waiting.reason)) return undefined;
  return `container ${status.name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`;
}

export function podView(pod: V1Pod | undefined): PodView {
  if (!pod) return { stage: "absent" };
  const node = pod.spec?.nodeName;
  if (pod.metadata?.deletionTimestamp) return { stage: "terminating", node };
  const status = pod.status ?? {};
  const containers = status.containerStatuses ?? [];
  const conditions = status.conditions ?? [];
  const condition = (type: string) => conditions.find((c) => c.type === type);

  if (status.phase === "Failed" || status.phase === "Succeeded") {
    const fallback = `the Pod ${status.phase === "Failed" ? "failed" : "ended"}`;
    const why =
      containers.map(terminatedReason).find(Boolean) ??
      ([status.reason, status.message].filter(Boolean).join(": ") || fallback);
    return { stage: "failed", reason: why, node };
  }
  const terminated = containers.map(terminatedReason).find(Boolean);
  if (terminated) return { stage: "failed", reason: terminated, node };
  const hopeless = containers.map(waitingProblem).find(Boolean);
  if (hopeless) return { stage: "failed", reason: hopeless, node };

  if (status.phase === "Running") {
    const ready = condition("Ready")?.status === "True";
    return { stage: ready ? "running" : "starting", node };
  }
  const scheduled = condition("PodScheduled");
  if (scheduled?.status === "False" && scheduled.message) {
    return { stage: "pending", reason: `not scheduled: ${scheduled.message}`, node };
  }
  return { stage: "pending", reason: node ? `scheduled on ${node}` : undefined, node };
}
