/**
 * The objects an environment is made of in a cluster, as plain data: its
 * Pod (a supervisor Pod for a CVM, a plain Pod for a standard environment),
 * its home claim and its Secret. No I/O, so the doctor can dry-run exactly the
 * Pod the provider would create and the tests can read what it asks for.
 */

import { basename, dirname } from "node:path";
import type {
  V1ObjectMeta,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Secret,
  V1SecurityContext,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import type { Environment, RegistryCredentials } from "../../core/environment.js";
import type { InfrastructureSettings } from "../../core/settings.js";
import {
  encodePodVariables,
  encodeRegistryAuth,
  podDefaults,
  podPaths,
  secretKeys,
} from "../../supervisor/pod-contract.js";
import { annotations, environmentContainer, labels, objectNames, supervisorContainer } from "./names.js";
import { reportAudience, reportTokenSeconds } from "./report-token.js";

export const defaultSupervisorImage = "cvm-supervisor:0.1.0";

export interface PodOptions {
  /** The image whose `cvm supervisor` runs a CVM (images/supervisor). */
  supervisorImage?: string;
  /** Where the supervisor reports; the server's URL as Pods reach it. */
  serverUrl?: string;
  /** How long the Pod gets to shut down (systemd's clean stop). */
  stopTimeoutSeconds?: number;
  /** The supervisor empties the inner Docker's data before it starts (a rebuild without keepDockerData). */
  discardDockerData?: boolean;
  /** Image pull secrets the kubelet uses for the supervisor image itself. */
  imagePullSecrets?: string[];
  /** Registries (host:port) the supervisor's engine may pull from over plain HTTP (an in-cluster registry). */
  insecureRegistries?: string[];
  /** The environment has a Secret (registry credentials) for the Pod to mount or pull with. */
  registrySecret?: boolean;
}

type PodEnvironment = Pick<
  Environment,
  "id" | "name" | "image" | "cvm" | "cpu" | "memoryGiB" | "diskGiB" | "ownerEmail"
> & {
  buildId?: string;
  /** The installation that makes the objects; each carries it as a label. */
  installationId?: string;
};

export function objectMeta(environment: PodEnvironment, name: string, kind: "cvm" | "standard"): V1ObjectMeta {
  return {
    name,
    labels: {
      [labels.managed]: "true",
      ...(environment.installationId ? { [labels.installation]: environment.installationId } : {}),
      [labels.environment]: environment.id,
      [labels.kind]: kind,
      ...(environment.buildId ? { [labels.build]: environment.buildId } : {}),
    },
    annotations: {
      [annotations.name]: environment.name,
      [annotations.owner]: environment.ownerEmail,
      [annotations.image]: environment.image,
    },
  };
}

export function supervisorSecurityContext(
  privileges: InfrastructureSettings["supervisorPrivileges"],
): V1SecurityContext {
  if (privileges.mode === "privileged") return { privileged: true };
  // Listed capabilities instead of privileged: still root, without AppArmor or seccomp in the way of an engine.
  return {
    capabilities: { add: privileges.capabilities.map((c) => c.replace(/^CAP_/, "")) },
    seccompProfile: { type: "Unconfined" },
    appArmorProfile: { type: "Unconfined" },
  };
}

function resources(environment: PodEnvironment) {
  // Requests equal limits: the environment gets exactly what its spec says (Guaranteed QoS).
  const amounts = { cpu: String(environment.cpu), memory: `${Math.round(environment.memoryGiB * 1024)}Mi` };
  return { requests: amounts, limits: amounts };
}

function homeVolume(claimName: string): V1Volume {
  return { name: "home", persistentVolumeClaim: { claimName } };
}

/** The settings a CVM's Pod carries to its supervisor. */
export type PodSettings = Pick<
  InfrastructureSettings,
  "supervisorPrivileges" | "runtime" | "fuseDevice" | "tunDevice" | "lxcfs" | "limits"
>;

/** A CVM: the supervisor container, which runs the environment as its inner container. */
export function supervisorPodSpec(environment: PodEnvironment, settings: PodSettings, options: PodOptions = {}): V1Pod {
  const names = objectNames(environment.id);
  const stopTimeoutSeconds = options.stopTimeoutSeconds ?? podDefaults.stopTimeoutSeconds;
  const env = encodePodVariables(
    {
      environment,
      runtime: settings.runtime,
      pidsLimit: settings.limits.pids,
      // Privileged, the supervisor sees the node's /dev and makes the CVM's own device nodes from it (cvm-devices.ts).
      fuseDevice: settings.fuseDevice,
      tunDevice: settings.tunDevice,
      lxcfs: settings.lxcfs,
      serverUrl: options.serverUrl,
      discardDockerData: options.discardDockerData ?? false,
      stopTimeoutSeconds,
      insecureRegistries: options.insecureRegistries ?? [],
    },
    supervisorContainer,
  );
  const mounts: V1VolumeMount[] = [
    { name: "home", mountPath: podPaths.home, subPath: "home" },
    { name: "home", mountPath: podPaths.dockerData, subPath: "docker" },
    { name: "runtime", mountPath: podPaths.runtime },
    { name: "report-token", mountPath: dirname(podPaths.reportToken), readOnly: true },
    ...(options.registrySecret ? [{ name: "credentials", mountPath: podPaths.secrets, readOnly: true }] : []),
    { name: "usr-src", mountPath: "/usr/src", readOnly: true },
    { name: "lib-modules", mountPath: "/lib/modules", readOnly: true },
  ];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: objectMeta(environment, names.pod, "cvm"),
    spec: {
      hostname: environment.name,
      // The supervisor restarting would restart the environment's init: a failure is reported instead.
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: stopTimeoutSeconds,
      ...(options.imagePullSecrets?.length
        ? { imagePullSecrets: options.imagePullSecrets.map((name) => ({ name })) }
        : {}),
      containers: [
        {
          name: supervisorContainer,
          image: options.supervisorImage ?? defaultSupervisorImage,
          command: ["cvm", "supervisor"],
          env,
          resources: resources(environment),
          securityContext: supervisorSecurityContext(settings.supervisorPrivileges),
          volumeMounts: mounts,
          readinessProbe: {
            exec: { command: ["test", "-e", podPaths.ready] },
            periodSeconds: 2,
            // On a busy node one exec probe can take past the default second: three misses, not one slow one, make it unready.
            timeoutSeconds: 5,
            failureThreshold: 3,
          },
        },
      ],
      volumes: [
        homeVolume(names.claim),
        { name: "runtime", emptyDir: {} },
        {
          // The kubelet mints and renews it; bound to this Pod, for cvm's audience only.
          name: "report-token",
          projected: {
            defaultMode: 0o400,
            sources: [
              {
                serviceAccountToken: {
                  audience: reportAudience,
                  expirationSeconds: reportTokenSeconds,
                  path: basename(podPaths.reportToken),
                },
              },
            ],
          },
        },
        ...(options.registrySecret
          ? [{ name: "credentials", secret: { secretName: names.secret, defaultMode: 0o400 } }]
          : []),
        // Unchecked: a node whose kernel has no modules has no /lib/modules (the engine works without them).
        { name: "usr-src", hostPath: { path: "/usr/src" } },
        { name: "lib-modules", hostPath: { path: "/lib/modules" } },
      ],
    },
  };
}

/**
 * A standard environment: the image itself, with the same home volume, kept
 * alive by a shell that waits (the image's own command may be a one-shot).
 */
export function standardPodSpec(environment: PodEnvironment, options: PodOptions = {}): V1Pod {
  const names = objectNames(environment.id);
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: objectMeta(environment, names.pod, "standard"),
    spec: {
      hostname: environment.name,
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: options.stopTimeoutSeconds ?? podDefaults.stopTimeoutSeconds,
      ...(options.registrySecret ? { imagePullSecrets: [{ name: names.secret }] } : {}),
      containers: [
        {
          name: environmentContainer,
          image: environment.image,
          command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"],
          resources: resources(environment),
          volumeMounts: [{ name: "home", mountPath: "/home", subPath: "home" }],
        },
      ],
      volumes: [homeVolume(names.claim)],
    },
  };
}

export function environmentPodSpec(
  environment: PodEnvironment,
  settings: PodSettings,
  options: PodOptions = {},
): V1Pod {
  return environment.cvm ? supervisorPodSpec(environment, settings, options) : standardPodSpec(environment, options);
}

export function homeClaimSpec(environment: PodEnvironment, storageClass?: string): V1PersistentVolumeClaim {
  const names = objectNames(environment.id);
  const meta = objectMeta({ ...environment, buildId: undefined }, names.claim, environment.cvm ? "cvm" : "standard");
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: meta,
    spec: {
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: `${environment.diskGiB}Gi` } },
      ...(storageClass ? { storageClassName: storageClass } : {}),
    },
  };
}

/** The environment's registry credentials, for the kubelet (a standard environment's image) and the supervisor (a CVM's). */
export function environmentSecretSpec(environment: PodEnvironment, credentials: RegistryCredentials): V1Secret {
  const names = objectNames(environment.id);
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: objectMeta({ ...environment, buildId: undefined }, names.secret, environment.cvm ? "cvm" : "standard"),
    // This type lets the kubelet pull a standard environment's image with the same credentials.
    type: "kubernetes.io/dockerconfigjson",
    stringData: { [secretKeys.registryAuth]: encodeRegistryAuth(environment.image, credentials) },
  };
}
