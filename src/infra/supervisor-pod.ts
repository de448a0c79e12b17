/**
 * The supervisor Pod the doctor dry-runs: the Kubernetes provider's own
 * builder, given a stand-in environment of the smallest size the settings
 * allow, so whatever the admission chain says about it, it would say about a
 * real CVM.
 */

import type { V1Pod } from "@kubernetes/client-node";
import type { InfrastructureSettings } from "../core/settings.js";
import { supervisorPodSpec } from "../providers/kubernetes/pod-spec.js";

/** What the supervisor Pod asks for, in words, for the evidence of the admission check. */
export function supervisorPodWords(settings: InfrastructureSettings): string {
  const privileges = settings.supervisorPrivileges;
  const security =
    privileges.mode === "privileged" ? "privileged" : `capabilities ${privileges.capabilities.join(",")}`;
  return `${security}; hostPath /usr/src and /lib/modules read-only`;
}

export function supervisorPodForDryRun(settings: InfrastructureSettings, id: string): V1Pod {
  return supervisorPodSpec(
    {
      id,
      name: "cvm-doctor",
      image: "cvm-doctor-check",
      cvm: true,
      cpu: settings.limits.minCpu,
      memoryGiB: settings.limits.minMemoryGiB,
      diskGiB: settings.limits.minDiskGiB,
      ownerEmail: "doctor@cvm.invalid",
    },
    settings,
  );
}
