/**
 * The CVM container as the engine is asked to create it. Pure: everything
 * here is data, so the request for each isolation runtime is unit-tested
 * exactly (sysbox is not installable on this project's machines).
 *
 * Never privileged. userns: the engine remaps container root to an
 * unprivileged uid range, every capability counts only inside that user
 * namespace, the cgroup namespace is private, no host devices are added (FUSE
 * and TUN come from cvm's own device nodes, cvm-devices.ts), and seccomp (and
 * AppArmor where enforced) are cvm's own profiles. /proc and /sys are whole,
 * as in a VM, so that nested containers, privileged ones included, can mount
 * them again (the kernel's rule is in gate/cvm-gate.c). sysbox: sysbox-runc
 * does its own user namespace and cgroup handling, as in the seed.
 */

import type Dockerode from "dockerode";
import type { Environment } from "../core/environment.js";
import { type CvmRuntime, sysboxRuntime } from "../core/isolation-runtime.js";
import { homeVolumeName, installationLabels, labels } from "../docker/index.js";
import type { CvmDeviceNodes } from "./cvm-devices.js";
import { gateCommand, gateMountPath, sysfsReferencePath } from "./start-gate.js";
import { maskedUnits } from "./systemd-masks.js";

export function containerName(environmentId: string): string {
  return `cvm-env-${environmentId}`;
}

export function dockerVolumeName(environmentId: string): string {
  return `cvm-docker-${environmentId}`;
}

/**
 * userns: every capability, as root in a VM has. They count only inside the
 * CVM's user namespace (a check against the node's root, such as loading a
 * module, setting the clock or making a device node, still fails), and a
 * nested `docker run --privileged` asks for every one of them. The seccomp
 * profile, resolved for the capabilities a CVM had before (seccomp.ts),
 * decides which system calls it can make, so that set did not grow.
 */
export const capabilities = ["ALL"];

/**
 * userns: none of Docker's masked and read-only /proc and /sys paths (what
 * the CLI's `--security-opt systempaths=unconfined` sends). Made inside the
 * CVM's user namespace, those mounts never bound its root (it can unmount
 * them), but they lock every nested user namespace out of mounting proc,
 * which needs a fully visible one above it. What they hid stays the node
 * root's: its files belong to the node's uid 0, unmapped in the CVM.
 */
export const systemPaths = { MaskedPaths: [] as string[], ReadonlyPaths: [] as string[] };

export interface CvmContainerInput {
  environment: Pick<Environment, "id" | "name" | "cpu" | "memoryGiB"> &
    Partial<Pick<Environment, "ownerId" | "buildId">>;
  /** The installation that makes it (absent in a Pod, whose engine is the environment's alone). */
  installationId?: string;
  image: string;
  runtime: CvmRuntime;
  /** The start gate binary on the node. */
  gateBinary: string;
  /** Processes and threads it may run (src/core/pids-limit.ts): a fork bomb stops here, not at the node's limit. */
  pidsLimit: number;
  /** JSON of the seccomp profile (userns only). */
  seccomp?: string;
  /** AppArmor profile name, where the node enforces AppArmor. */
  apparmor?: string;
  /** The writable layer's size, where the engine's filesystem can enforce it (disk-limit.ts). */
  storageOpt?: Record<string, string>;
  /** The mounted disk of its own (docker-disk.ts) to bind as /var/lib/docker, instead of a named volume. */
  dockerDisk?: string;
  /** cvm's own FUSE and TUN device nodes, for the devices the settings allow and the node has (userns only). */
  devices?: CvmDeviceNodes;
  /** The engine's writable sysfs for the start gate (userns only); without it nested privileged containers fail. */
  sysfsReference?: string;
}

export interface VolumeSources {
  home: string;
  dockerData: string;
}

/**
 * A named volume whose data is a directory of the node (in a Pod, a subpath
 * of the claim): still a volume, so the engine copies the image's content in
 * the first time (the image's /home/dev, with its remapped owners), which a
 * plain bind would hide.
 */
export function boundVolume(name: string, environmentId: string, directory: string): Dockerode.VolumeCreateOptions {
  return {
    Name: name,
    Driver: "local",
    DriverOpts: { type: "none", o: "bind", device: directory },
    Labels: { [labels.managed]: "true", [labels.environment]: environmentId },
  };
}

function dataMounts(environmentId: string, dockerDisk?: string): Dockerode.MountSettings[] {
  return [
    dockerDisk
      ? { Type: "bind", Source: dockerDisk, Target: "/var/lib/docker" }
      : { Type: "volume", Source: dockerVolumeName(environmentId), Target: "/var/lib/docker" },
    { Type: "volume", Source: homeVolumeName(environmentId), Target: "/home" },
  ];
}

const gib = 1024 ** 3;

/** Where each device is inside a CVM, and its device cgroup rule (character devices, fixed numbers). */
const deviceTargets: Record<keyof CvmDeviceNodes, { target: string; rule: string }> = {
  fuse: { target: "/dev/fuse", rule: "c 10:229 rwm" },
  tun: { target: "/dev/net/tun", rule: "c 10:200 rwm" },
};

/**
 * userns: the engine's writable sysfs (sysfs-reference.ts), read-only: the
 * view the start gate needs to give the CVM a sysfs of its own that nested
 * containers can mount again, and the one left to tools that unmount /sys to
 * mount their own (`ip netns exec`).
 */
function sysfsReferenceMount(source: string): Dockerode.MountSettings {
  return { Type: "bind", Source: source, Target: sysfsReferencePath, ReadOnly: true };
}

function deviceMounts(devices: CvmDeviceNodes): Dockerode.MountSettings[] {
  return (Object.keys(deviceTargets) as (keyof CvmDeviceNodes)[]).flatMap((device) => {
    const source = devices[device];
    return source ? [{ Type: "bind", Source: source, Target: deviceTargets[device].target } as const] : [];
  });
}

function deviceRules(devices: CvmDeviceNodes): string[] {
  return (Object.keys(deviceTargets) as (keyof CvmDeviceNodes)[])
    .filter((device) => devices[device])
    .map((device) => deviceTargets[device].rule);
}

export function cvmContainerRequest(input: CvmContainerInput): Dockerode.ContainerCreateOptions {
  const { environment, runtime } = input;
  const userns = runtime === "userns";
  const devices = userns ? (input.devices ?? {}) : {};
  const securityOpt = [
    ...(userns && input.seccomp ? [`seccomp=${input.seccomp}`] : []),
    ...(input.apparmor ? [`apparmor=${input.apparmor}`] : []),
  ];
  const rules = deviceRules(devices);
  const memory = Math.round(environment.memoryGiB * gib);
  const hostConfig: Dockerode.HostConfig = {
    Mounts: [
      ...dataMounts(environment.id, input.dockerDisk),
      { Type: "bind", Source: input.gateBinary, Target: gateMountPath, ReadOnly: true },
      ...(userns && input.sysfsReference ? [sysfsReferenceMount(input.sysfsReference)] : []),
      ...deviceMounts(devices),
    ],
    ...(rules.length > 0 ? { DeviceCgroupRules: rules } : {}),
    Tmpfs: { "/run": "rw,nosuid,nodev,mode=755", "/run/lock": "rw,nosuid,nodev,noexec,mode=1777" },
    Memory: memory,
    MemorySwap: memory,
    NanoCpus: Math.round(environment.cpu * 1e9),
    PidsLimit: input.pidsLimit,
    RestartPolicy: { Name: "no" },
    LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "2" } },
    ...(securityOpt.length > 0 ? { SecurityOpt: securityOpt } : {}),
    ...(input.storageOpt ? { StorageOpt: input.storageOpt } : {}),
  };
  if (userns) {
    Object.assign(hostConfig, {
      CapAdd: capabilities,
      ...systemPaths,
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
    Cmd: gateCommand("/sbin/init", userns ? maskedUnits.map((m) => m.unit) : [], environment.cpu),
    // systemd reads it to know it runs in a container.
    Env: ["container=docker"],
    StopSignal: "SIGRTMIN+3",
    Labels: {
      ...installationLabels(input.installationId),
      [labels.environment]: environment.id,
      ...(environment.ownerId ? { [labels.owner]: environment.ownerId } : {}),
      ...(environment.buildId ? { [labels.build]: environment.buildId } : {}),
      [labels.runtime]: runtime,
    },
    HostConfig: hostConfig,
  };
}
