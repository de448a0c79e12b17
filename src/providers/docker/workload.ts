/**
 * What a standard environment is in the engine: its container's name, labels,
 * home volume and create request. Plain data, so the rules (limits applied,
 * never privileged, no host paths) are tested without an engine. The label
 * table and the home volume's name are src/docker's, shared with CVMs.
 */

import type Dockerode from "dockerode";
import type { Environment } from "../../core/environment.js";
import { homeVolumeName, installationLabels, installationTag, labels } from "../../docker/index.js";

/** The part of an environment's id that tells containers apart in `docker ps`. */
export function shortId(environmentId: string): string {
  return environmentId
    .replace(/^[a-z]+_/, "")
    .replace(/[^a-zA-Z0-9]/g, "")
    .slice(0, 8);
}

export function containerName(environment: Pick<Environment, "id" | "name">): string {
  return `cvm-${environment.name}-${shortId(environment.id)}`;
}

export function workloadLabels(
  environment: Pick<Environment, "id" | "ownerId" | "buildId">,
  installationId: string | undefined,
): Record<string, string> {
  return {
    ...installationLabels(installationId),
    [labels.environment]: environment.id,
    [labels.build]: environment.buildId ?? "",
    [labels.owner]: environment.ownerId,
  };
}

export function homeVolumeRequest(
  environment: Pick<Environment, "id" | "ownerId">,
  installationId: string | undefined,
  /** The local driver's options of a volume on a disk of its own (environment-disks.ts). */
  onDisk?: { Driver: string; DriverOpts: Record<string, string> },
): Dockerode.VolumeCreateOptions {
  return {
    ...onDisk,
    Name: homeVolumeName(environment.id),
    Labels: {
      ...installationLabels(installationId),
      [labels.environment]: environment.id,
      [labels.owner]: environment.ownerId,
      [labels.volume]: "home",
    },
  };
}

/**
 * Keeps the environment up whatever the image's own command: a dev environment
 * is a place to exec into, and most images' default command (a shell) exits at
 * once. The engine's init (Init: true) is PID 1, reaps children and forwards
 * SIGTERM, which ends the loop at once, so a stop takes no timeout.
 */
export const keepAlive = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done"];

/**
 * The one network the installation's standard environments join: a bridge of
 * its own, so they share neither the engine's default bridge with unrelated
 * containers nor another installation's, with inter-container traffic off;
 * which environments may reach which is cvm's own firewall's to say
 * (environment-firewall.ts).
 */
export function standardNetwork(installationId: string | undefined): Dockerode.NetworkCreateOptions {
  return {
    Name: installationId ? `cvm-standard-${installationTag(installationId)}` : "cvm-standard",
    Driver: "bridge",
    CheckDuplicate: true,
    Labels: installationLabels(installationId),
    Options: { "com.docker.network.bridge.enable_icc": "false" },
  };
}

const gib = 2 ** 30;

export interface StandardContainerInput {
  environment: Environment;
  image: string;
  networkId: string;
  installationId?: string;
  /** Processes and threads it may run (src/core/pids-limit.ts). */
  pidsLimit: number;
  /** The writable layer's size, where the engine can enforce one (overlay2 on xfs with project quotas). */
  storageOpt?: Record<string, string>;
}

export function containerRequest({
  environment,
  image,
  networkId,
  installationId,
  pidsLimit,
  storageOpt,
}: StandardContainerInput): Dockerode.ContainerCreateOptions {
  return {
    name: containerName(environment),
    Image: image,
    Hostname: environment.name,
    Entrypoint: keepAlive,
    Cmd: [],
    Labels: workloadLabels(environment, installationId),
    Tty: false,
    OpenStdin: false,
    HostConfig: {
      Init: true,
      NanoCpus: Math.round(environment.cpu * 1e9),
      Memory: Math.round(environment.memoryGiB * gib),
      // No swap beyond the memory limit: the limit is what the user asked for.
      MemorySwap: Math.round(environment.memoryGiB * gib),
      PidsLimit: pidsLimit,
      Mounts: [{ Type: "volume", Source: homeVolumeName(environment.id), Target: "/home" }],
      NetworkMode: networkId,
      RestartPolicy: { Name: "no" },
      Privileged: false,
      Binds: [],
      Devices: [],
      CapAdd: [],
      // Raw sockets would let it forge packets (ARP, addresses) on the bridge it shares with others' environments.
      CapDrop: ["NET_RAW"],
      ...(storageOpt ? { StorageOpt: storageOpt } : {}),
    },
  };
}
