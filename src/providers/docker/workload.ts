/**
 * What a standard environment is in the engine: its container's name, labels,
 * home volume and create request. Plain data, so the rules (limits applied,
 * never privileged, no host paths) are tested without an engine. The label
 * table and the home volume's name are src/docker's, shared with CVMs.
 */

import type Dockerode from "dockerode";
import type { Environment } from "../../core/environment.js";
import { homeVolumeName, labels } from "../../docker/index.js";

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

export function workloadLabels(environment: Pick<Environment, "id" | "ownerId" | "buildId">): Record<string, string> {
  return {
    [labels.managed]: "true",
    [labels.environment]: environment.id,
    [labels.build]: environment.buildId ?? "",
    [labels.owner]: environment.ownerId,
  };
}

export function homeVolumeRequest(environment: Pick<Environment, "id" | "ownerId">): Dockerode.VolumeCreateOptions {
  return {
    Name: homeVolumeName(environment.id),
    Labels: {
      [labels.managed]: "true",
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
 * The one network standard environments join: a bridge of cvm's own, so they
 * do not share the engine's default bridge with unrelated containers, with
 * inter-container traffic off, so one user's environment cannot reach another's.
 */
export const standardNetwork: Dockerode.NetworkCreateOptions = {
  Name: "cvm-standard",
  Driver: "bridge",
  CheckDuplicate: true,
  Labels: { [labels.managed]: "true" },
  Options: { "com.docker.network.bridge.enable_icc": "false" },
};

const gib = 2 ** 30;

export function containerRequest(
  environment: Environment,
  image: string,
  networkId: string,
): Dockerode.ContainerCreateOptions {
  return {
    name: containerName(environment),
    Image: image,
    Hostname: environment.name,
    Entrypoint: keepAlive,
    Cmd: [],
    Labels: workloadLabels(environment),
    Tty: false,
    OpenStdin: false,
    HostConfig: {
      Init: true,
      NanoCpus: Math.round(environment.cpu * 1e9),
      Memory: Math.round(environment.memoryGiB * gib),
      // No swap beyond the memory limit: the limit is what the user asked for.
      MemorySwap: Math.round(environment.memoryGiB * gib),
      Mounts: [{ Type: "volume", Source: homeVolumeName(environment.id), Target: "/home" }],
      NetworkMode: networkId,
      RestartPolicy: { Name: "no" },
      Privileged: false,
      Binds: [],
      Devices: [],
      CapAdd: [],
    },
  };
}
