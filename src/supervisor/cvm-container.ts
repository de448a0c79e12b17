/**
 * The CVM container as the engine is asked to create it. Pure: everything
 * here is data, so the request for each isolation runtime is unit-tested
 * exactly (sysbox is not installable on this project's machines).
 *
 * Never privileged. userns: the engine remaps container root to an
 * unprivileged uid range, the added capabilities count only inside that user
 * namespace, the cgroup namespace is private, no host devices are added, and
 * seccomp (and AppArmor where enforced) are cvm's own profiles. sysbox:
 * sysbox-runc does its own user namespace and cgroup handling, as in the seed.
 */

import type Dockerode from "dockerode";
import type { Environment } from "../core/environment.js";
import { type CvmRuntime, sysboxRuntime } from "../core/isolation-runtime.js";
import { homeVolumeName, labels } from "../docker/index.js";
import { gateCommand, gateMountPath } from "./start-gate.js";

export function containerName(environmentId: string): string {
  return `cvm-env-${environmentId}`;
}

export function dockerVolumeName(environmentId: string): string {
  return `cvm-docker-${environmentId}`;
}

/** The capabilities added to Docker's default set, for the userns runtime, and why. */
export const addedCapabilities: { name: string; why: string }[] = [
  { name: "SYS_ADMIN", why: "systemd and the inner dockerd mount filesystems (their own namespace only)" },
  { name: "NET_ADMIN", why: "the inner dockerd makes its bridge and iptables rules in the CVM's network namespace" },
];

/** Enough for systemd, dockerd and a build; a fork bomb stops here instead of at the node's limit. */
export const pidsLimit = 16_384;

export interface CvmContainerInput {
  environment: Pick<Environment, "id" | "name" | "cpu" | "memoryGiB">;
  image: string;
  runtime: CvmRuntime;
  /** The start gate binary on the node. */
  gateBinary: string;
  /** JSON of the seccomp profile (userns only). */
  seccomp?: string;
  /** AppArmor profile name, where the node enforces AppArmor. */
  apparmor?: string;
  /** The writable layer's size, where the engine's filesystem can enforce it (disk-limit.ts). */
  storageOpt?: Record<string, string>;
  /** Directories to bind as /home and /var/lib/docker instead of the engine's named volumes (a Pod's claim). */
  volumeSources?: VolumeSources;
  /** The mounted disk of its own (docker-disk.ts) to bind as /var/lib/docker, instead of a named volume. */
  dockerDisk?: string;
}

export interface VolumeSources {
  home: string;
  dockerData: string;
}

function dataMounts(environmentId: string, sources?: VolumeSources, dockerDisk?: string): Dockerode.MountSettings[] {
  if (sources) {
    return [
      { Type: "bind", Source: sources.dockerData, Target: "/var/lib/docker" },
      { Type: "bind", Source: sources.home, Target: "/home" },
    ];
  }
  return [
    dockerDisk
      ? { Type: "bind", Source: dockerDisk, Target: "/var/lib/docker" }
      : { Type: "volume", Source: dockerVolumeName(environmentId), Target: "/var/lib/docker" },
    { Type: "volume", Source: homeVolumeName(environmentId), Target: "/home" },
  ];
}

const gib = 1024 ** 3;

export function cvmContainerRequest(input: CvmContainerInput): Dockerode.ContainerCreateOptions {
  const { environment, runtime } = input;
  const securityOpt = [
    ...(runtime === "userns" && input.seccomp ? [`seccomp=${input.seccomp}`] : []),
    ...(input.apparmor ? [`apparmor=${input.apparmor}`] : []),
  ];
  const memory = Math.round(environment.memoryGiB * gib);
  const hostConfig: Dockerode.HostConfig = {
    Mounts: [
      ...dataMounts(environment.id, input.volumeSources, input.dockerDisk),
      { Type: "bind", Source: input.gateBinary, Target: gateMountPath, ReadOnly: true },
    ],
    Tmpfs: { "/run": "rw,nosuid,nodev,mode=755", "/run/lock": "rw,nosuid,nodev,noexec,mode=1777" },
    Memory: memory,
    MemorySwap: memory,
    NanoCpus: Math.round(environment.cpu * 1e9),
    PidsLimit: pidsLimit,
    RestartPolicy: { Name: "no" },
    LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "2" } },
    ...(securityOpt.length > 0 ? { SecurityOpt: securityOpt } : {}),
    ...(input.storageOpt ? { StorageOpt: input.storageOpt } : {}),
  };
  if (runtime === "userns") {
    Object.assign(hostConfig, {
      CapAdd: addedCapabilities.map((c) => c.name),
      CgroupnsMode: "private",
      Privileged: false,
    });
  } else {
    Object.assign(hostConfig, { Runtime: sysboxRuntime, Privileged: false });
  }
  return {
    name: containerName(environment.id),
    Image: input.image,
    Hostname: environment.name,
    Entrypoint: [gateMountPath],
    Cmd: gateCommand("/sbin/init"),
    // systemd reads it to know it runs in a container.
    Env: ["container=docker"],
    StopSignal: "SIGRTMIN+3",
    Labels: {
      [labels.managed]: "true",
      [labels.environment]: environment.id,
      [labels.runtime]: runtime,
    },
    HostConfig: hostConfig,
  };
}
