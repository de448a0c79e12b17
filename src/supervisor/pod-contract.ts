/**
 * What a CVM's Pod tells the agent inside it: the Pod spec
 * (src/providers/kubernetes/pod-spec.ts) encodes it as variables and files,
 * the agent (pod-agent.ts) decodes it. Names, paths, defaults and the report
 * URL are written once, here, so the two sides cannot drift; pod-contract.test.ts
 * takes a real Pod spec through the agent's decoder.
 */

import type { V1EnvVar } from "@kubernetes/client-node";
import { apiPrefix } from "../api/contract.js";
import type { RegistryCredentials } from "../core/environment.js";
import { credentialServer } from "../core/image-reference.js";
import { type RuntimeChoice, runtimeChoices } from "../core/settings.js";

/** Where things sit inside the supervisor container. */
export const podPaths = {
  /** The claim's subpaths, bound as the environment's /home and /var/lib/docker. */
  home: "/var/lib/cvm/volumes/home",
  dockerData: "/var/lib/cvm/volumes/docker",
  /** cvm's own engine for this one environment (an emptyDir). */
  runtime: "/var/lib/cvm/runtime",
  /** Written by the agent once the environment is ready; the readiness probe looks for it. */
  ready: "/var/lib/cvm/runtime/ready",
  /** The environment's Secret (registry credentials), mounted read-only when it has one. */
  secrets: "/var/run/secrets/cvm",
  /**
   * The Pod's projected service-account token for cvm's audience
   * (src/providers/kubernetes/report-token.ts), renewed by the kubelet: the
   * agent authenticates its reports with it.
   */
  reportToken: "/var/run/secrets/cvm-report/token",
} as const;

/** Keys of the environment's Secret, so the names of its files in `podPaths.secrets`; it exists only with credentials. */
export const secretKeys = {
  /** Registry credentials, in the format kubelets and engines read. */
  registryAuth: ".dockerconfigjson",
} as const;

export const podVariables = {
  environmentId: "CVM_ENVIRONMENT_ID",
  environmentName: "CVM_ENVIRONMENT_NAME",
  image: "CVM_IMAGE",
  runtime: "CVM_RUNTIME",
  fuseDevice: "CVM_FUSE_DEVICE",
  tunDevice: "CVM_TUN_DEVICE",
  lxcfs: "CVM_LXCFS",
  buildId: "CVM_BUILD_ID",
  ownerEmail: "CVM_OWNER_EMAIL",
  /** The server's base URL as Pods reach it; the agent reports to supervisorReportUrl of it. */
  serverUrl: "CVM_REPORT_URL",
  reportTokenFile: "CVM_REPORT_TOKEN_FILE",
  registryAuthFile: "CVM_REGISTRY_AUTH_FILE",
  homeDir: "CVM_HOME_DIR",
  dockerDataDir: "CVM_DOCKER_DATA_DIR",
  runtimeDir: "CVM_RUNTIME_DIR",
  readyFile: "CVM_READY_FILE",
  discardDockerData: "CVM_DISCARD_DOCKER_DATA",
  stopTimeoutSeconds: "CVM_STOP_TIMEOUT_SECONDS",
  /** Registries (host:port, comma-separated) the agent's engine may pull from over plain HTTP. */
  insecureRegistries: "CVM_INSECURE_REGISTRIES",
  /** The admin's process limit per environment (0: sized to the node the Pod runs on). */
  pidsLimit: "CVM_PIDS_LIMIT",
  /** The environment's disk size: its root filesystem's limit (its claim holds /home and /var/lib/docker). */
  diskGiB: "CVM_DISK_GIB",
  /** The Pod's own resources, through the downward API rather than copied. */
  cpuRequestMillis: "CVM_CPU_REQUEST_MILLIS",
  cpuLimitMillis: "CVM_CPU_LIMIT_MILLIS",
  memoryRequestMiB: "CVM_MEMORY_REQUEST_MIB",
  memoryLimitMiB: "CVM_MEMORY_LIMIT_MIB",
} as const;

/** What the agent assumes when the Pod leaves a variable out. */
export const podDefaults = {
  runtime: "auto" as RuntimeChoice,
  cpuLimitMillis: 2000,
  memoryLimitMiB: 4096,
  stopTimeoutSeconds: 30,
};

/** The route the agent posts to (served by src/api/supervisor-reports.ts). */
export const supervisorReportRoute = "/environments/:id/supervisor-report";

export function supervisorReportUrl(serverUrl: string, environmentId: string): string {
  const path = supervisorReportRoute.replace(":id", encodeURIComponent(environmentId));
  return `${serverUrl.replace(/\/+$/, "")}${apiPrefix}${path}`;
}

/** What the Pod spec tells the agent. */
export interface PodAssignment {
  environment: { id: string; name: string; image: string; ownerEmail: string; buildId?: string; diskGiB: number };
  runtime: RuntimeChoice;
  pidsLimit: number;
  /** The infrastructure settings' FUSE and TUN toggles: whether the CVM gets /dev/fuse and /dev/net/tun. */
  fuseDevice: boolean;
  tunDevice: boolean;
  /** The infrastructure settings' LXCFS toggle: whether the CVM's /proc shows its own limits. */
  lxcfs: boolean;
  /** The server's base URL; no reports are sent without one. */
  serverUrl?: string;
  discardDockerData: boolean;
  stopTimeoutSeconds: number;
  /** Registries (host:port) the agent's engine may pull from over plain HTTP (an in-cluster registry). */
  insecureRegistries: string[];
}

/** The assignment as the supervisor container's variables; `container` names it for the downward API. */
export function encodePodVariables(assignment: PodAssignment, container: string): V1EnvVar[] {
  const { environment } = assignment;
  const v = podVariables;
  const value = (name: string, text: string): V1EnvVar => ({ name, value: text });
  const resource = (name: string, field: string, divisor: string): V1EnvVar => ({
    name,
    valueFrom: { resourceFieldRef: { containerName: container, resource: field, divisor } },
  });
  return [
    value(v.environmentId, environment.id),
    value(v.environmentName, environment.name),
    value(v.image, environment.image),
    value(v.runtime, assignment.runtime),
    value(v.fuseDevice, String(assignment.fuseDevice)),
    value(v.tunDevice, String(assignment.tunDevice)),
    value(v.lxcfs, String(assignment.lxcfs)),
    value(v.buildId, environment.buildId ?? ""),
    value(v.ownerEmail, environment.ownerEmail),
    value(v.serverUrl, assignment.serverUrl ?? ""),
    // Files, not values: the password and the token never appear in the Pod's spec.
    value(v.reportTokenFile, podPaths.reportToken),
    value(v.registryAuthFile, `${podPaths.secrets}/${secretKeys.registryAuth}`),
    value(v.homeDir, podPaths.home),
    value(v.dockerDataDir, podPaths.dockerData),
    value(v.runtimeDir, podPaths.runtime),
    value(v.readyFile, podPaths.ready),
    value(v.discardDockerData, assignment.discardDockerData ? "true" : "false"),
    value(v.stopTimeoutSeconds, String(assignment.stopTimeoutSeconds)),
    value(v.insecureRegistries, assignment.insecureRegistries.join(",")),
    value(v.pidsLimit, String(assignment.pidsLimit)),
    value(v.diskGiB, String(environment.diskGiB)),
    resource(v.cpuRequestMillis, "requests.cpu", "1m"),
    resource(v.cpuLimitMillis, "limits.cpu", "1m"),
    resource(v.memoryRequestMiB, "requests.memory", "1Mi"),
    resource(v.memoryLimitMiB, "limits.memory", "1Mi"),
  ];
}

/** What the agent reads from its variables: the assignment, its limits, and where its files and directories are. */
export interface PodVariables extends PodAssignment {
  cpuLimitMillis: number;
  memoryLimitMiB: number;
  /** Where the agent posts its reports; absent without a server URL. */
  reportUrl?: string;
  reportTokenFile: string;
  registryAuthFile: string;
  homeDir: string;
  dockerDataDir: string;
  runtimeDir: string;
  readyFile: string;
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`${name} is not set: cvm supervisor runs inside a CVM's Pod`);
  return value;
}

function numberOr(text: string | undefined, fallback: number): number {
  const value = Number(text);
  return text && Number.isFinite(value) ? value : fallback;
}

function runtimeOf(text: string | undefined): RuntimeChoice {
  return runtimeChoices.find((choice) => choice === text) ?? podDefaults.runtime;
}

export function decodePodVariables(env: NodeJS.ProcessEnv): PodVariables {
  const v = podVariables;
  const id = required(env, v.environmentId);
  const serverUrl = env[v.serverUrl] || undefined;
  return {
    environment: {
      id,
      name: required(env, v.environmentName),
      image: required(env, v.image),
      ownerEmail: env[v.ownerEmail] ?? "",
      buildId: env[v.buildId] || undefined,
      diskGiB: numberOr(env[v.diskGiB], 0),
    },
    runtime: runtimeOf(env[v.runtime]),
    pidsLimit: numberOr(env[v.pidsLimit], 0),
    // Devices are on unless the Pod says otherwise, as in the settings' defaults.
    fuseDevice: env[v.fuseDevice] !== "false",
    tunDevice: env[v.tunDevice] !== "false",
    lxcfs: env[v.lxcfs] !== "false",
    serverUrl,
    reportUrl: serverUrl && supervisorReportUrl(serverUrl, id),
    discardDockerData: env[v.discardDockerData] === "true",
    stopTimeoutSeconds: numberOr(env[v.stopTimeoutSeconds], podDefaults.stopTimeoutSeconds),
    insecureRegistries: (env[v.insecureRegistries] ?? "").split(",").filter(Boolean),
    cpuLimitMillis: numberOr(env[v.cpuLimitMillis], podDefaults.cpuLimitMillis),
    memoryLimitMiB: numberOr(env[v.memoryLimitMiB], podDefaults.memoryLimitMiB),
    reportTokenFile: env[v.reportTokenFile] || podPaths.reportToken,
    registryAuthFile: env[v.registryAuthFile] || `${podPaths.secrets}/${secretKeys.registryAuth}`,
    homeDir: env[v.homeDir] || podPaths.home,
    dockerDataDir: env[v.dockerDataDir] || podPaths.dockerData,
    runtimeDir: env[v.runtimeDir] || podPaths.runtime,
    readyFile: env[v.readyFile] || podPaths.ready,
  };
}

/** The Secret's registry credentials file: a docker config holding the image's registry alone, or none. */
export function encodeRegistryAuth(image: string, credentials: RegistryCredentials | undefined): string {
  const auths = credentials
    ? {
        [credentialServer(image)]: {
          username: credentials.username,
          password: credentials.password,
          auth: Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64"),
        },
      }
    : {};
  return JSON.stringify({ auths });
}

/** The credentials of a docker config file for `image`'s registry alone: never handed to another registry. */
export function decodeRegistryAuthFor(
  dockerConfig: string | undefined,
  image: string,
): RegistryCredentials | undefined {
  if (!dockerConfig) return undefined;
  const auths = (JSON.parse(dockerConfig) as { auths?: Record<string, unknown> }).auths ?? {};
  const server = credentialServer(image);
  return server in auths ? decodeRegistryAuth(JSON.stringify({ auths: { [server]: auths[server] } })) : undefined;
}

/** The first credentials of a docker config file (the environment's Secret holds at most one registry's). */
export function decodeRegistryAuth(dockerConfig: string | undefined): RegistryCredentials | undefined {
  if (!dockerConfig) return undefined;
  const auths = (JSON.parse(dockerConfig) as { auths?: Record<string, { username?: string; password?: string }> })
    .auths;
  const first = Object.values(auths ?? {})[0];
  return first?.username && first.password ? { username: first.username, password: first.password } : undefined;
}

/**
 * A trial of the supervisor Pod (the doctor's, src/infra/supervisor-trial.ts):
 * the same Pod, whose command starts the supervisor's engine, asks it for the
 * isolation runtime and for each image's manifest, and leaves its answer as
 * the container's termination message, which the kubelet keeps in the Pod's
 * status for whoever created it.
 */
export const probeCommand = (images: string[]): string[] => ["cvm", "supervisor", "probe", "--", ...images];

/** The kubelet keeps at most 4096 bytes of a termination message. */
export const probeVerdictBytes = 4096;

export interface ProbeVerdict {
  /** How long the engine took to answer, in ms; absent when it did not start. */
  engineMs?: number;
  /** Why the engine did not start, in its own words. */
  engine?: string;
  /** The runtimes the engine registers. */
  runtimes?: string[];
  /** Why the isolation runtime the settings ask for is not here. */
  runtime?: string;
  /** Each image, with its manifest's digest or the registry's answer. */
  images: { image: string; digest?: string; failure?: string; kind?: string }[];
}

/** The verdict as the termination message: cut to fit, long answers first. */
export function encodeProbeVerdict(verdict: ProbeVerdict): string {
  let text = JSON.stringify(verdict);
  for (let keep = 400; Buffer.byteLength(text) > probeVerdictBytes && keep >= 40; keep = Math.floor(keep / 2)) {
    const cut = (s: string | undefined) => (s && s.length > keep ? `${s.slice(0, keep)}…` : s);
    text = JSON.stringify({
      ...verdict,
      engine: cut(verdict.engine),
      runtime: cut(verdict.runtime),
      images: verdict.images.map((i) => ({ ...i, failure: cut(i.failure) })),
    });
  }
  return text;
}

/** The termination message back to a verdict; undefined when it is not one (an image without the probe). */
export function decodeProbeVerdict(message: string | undefined): ProbeVerdict | undefined {
  if (!message?.trim().startsWith("{")) return undefined;
  try {
    const parsed = JSON.parse(message) as ProbeVerdict;
    return Array.isArray(parsed.images) ? parsed : undefined;
  } catch {
    return undefined;
  }
}
