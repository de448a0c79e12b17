/**
 * What marks an engine's container, volume or network as cvm's, on the host's
 * engine (standard environments) and in cvm's own (CVMs) alike: one table of
 * labels, the home volume's name, and the listing of labeled workloads that
 * reconcile reads from either engine. Every object also names the
 * installation that made it, so a second cvm server on the same engine (its
 * own store, its own id) never lists, adopts or removes the first's.
 */

import { createHash } from "node:crypto";
import type Dockerode from "dockerode";
import type { LabeledWorkload } from "../core/provider.js";

export const labels = {
  managed: "dev.cvm.managed",
  /** The installation (its store's id) that made the object. */
  installation: "dev.cvm.installation",
  environment: "dev.cvm.environment",
  build: "dev.cvm.build",
  owner: "dev.cvm.owner",
  /** On a CVM's container: the isolation runtime it was made with. */
  runtime: "dev.cvm.runtime",
  /** On volumes: what the volume holds (home). */
  volume: "dev.cvm.volume",
} as const;

/** The label filter that finds every object cvm manages in an engine, whichever installation made it. */
export const managedFilter = `${labels.managed}=true`;

/** The labels every object of this installation carries. */
export function installationLabels(installationId: string | undefined): Record<string, string> {
  return { [labels.managed]: "true", ...(installationId ? { [labels.installation]: installationId } : {}) };
}

/**
 * The label filters that find this installation's objects. Without an id (a
 * supervisor whose engine is its own, as in a Pod) every managed object is its.
 */
export function installationFilters(installationId: string | undefined): string[] {
  return Object.entries(installationLabels(installationId)).map(([key, value]) => `${key}=${value}`);
}

/** Whether an object's labels say this installation made it. */
export function isInstallations(objectLabels: Record<string, string> | undefined, installationId?: string): boolean {
  if (objectLabels?.[labels.managed] !== "true") return false;
  return !installationId || objectLabels[labels.installation] === installationId;
}

/**
 * A short, stable tag of an installation for names the kernel or the engine
 * limits in length (a network's, an iptables chain's): 8 hex digits.
 */
export function installationTag(installationId: string): string {
  return createHash("sha256").update(installationId).digest("hex").slice(0, 8);
}

/** The volume that outlives rebuilds as the environment's /home. */
export function homeVolumeName(environmentId: string): string {
  return `cvm-home-${environmentId}`;
}

/** Every container in the engine carrying this installation's labels, running or not. */
export async function listLabeledWorkloads(docker: Dockerode, installationId?: string): Promise<LabeledWorkload[]> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: installationFilters(installationId) },
  });
  return containers.map((c) => ({
    environmentId: c.Labels[labels.environment] ?? "",
    ref: c.Id,
    running: c.State === "running",
  }));
}

/** A running container of the installation with its address, as a firewall needs it. */
export interface RunningAddress {
  containerId: string;
  environmentId: string;
  ownerId: string;
  /** Its first IPv4 address on any network (cvm's containers have one). */
  address: string;
}

/** Every running container of this installation that has an owner and an address. */
export async function listRunningAddresses(docker: Dockerode, installationId?: string): Promise<RunningAddress[]> {
  const containers = await docker.listContainers({
    filters: { label: installationFilters(installationId), status: ["running"] },
  });
  return containers.flatMap((c) => {
    const address = Object.values(c.NetworkSettings?.Networks ?? {})
      .map((n) => n.IPAddress)
      .find(Boolean);
    const environmentId = c.Labels[labels.environment];
    const ownerId = c.Labels[labels.owner];
    return address && environmentId && ownerId ? [{ containerId: c.Id, environmentId, ownerId, address }] : [];
  });
}
