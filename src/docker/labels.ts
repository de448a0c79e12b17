/**
 * What marks an engine's container or volume as cvm's, on the host's engine
 * (standard environments) and in cvm's own (CVMs) alike: one table of labels,
 * the home volume's name, and the listing of labeled workloads that reconcile
 * reads from either engine.
 */

import type Dockerode from "dockerode";
import type { LabeledWorkload } from "../core/provider.js";

export const labels = {
  managed: "dev.cvm.managed",
  environment: "dev.cvm.environment",
  build: "dev.cvm.build",
  owner: "dev.cvm.owner",
  /** On a CVM's container: the isolation runtime it was made with. */
  runtime: "dev.cvm.runtime",
  /** On volumes: what the volume holds (home). */
  volume: "dev.cvm.volume",
} as const;

/** The label filter that finds every object cvm manages in an engine. */
export const managedFilter = `${labels.managed}=true`;

/** The volume that outlives rebuilds as the environment's /home. */
export function homeVolumeName(environmentId: string): string {
  return `cvm-home-${environmentId}`;
}

/** Every container in the engine carrying cvm's labels, running or not. */
export async function listLabeledWorkloads(docker: Dockerode): Promise<LabeledWorkload[]> {
  const containers = await docker.listContainers({ all: true, filters: { label: [managedFilter] } });
  return containers.map((c) => ({
    environmentId: c.Labels[labels.environment] ?? "",
    ref: c.Id,
    running: c.State === "running",
  }));
}
