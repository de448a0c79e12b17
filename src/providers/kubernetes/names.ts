/**
 * What cvm calls its objects in a cluster: names derived from the
 * environment's id, and the labels and annotations that say an object is
 * cvm's, which environment it belongs to and which build made it.
 */

export const labels = {
  managed: "dev.cvm/managed",
  environment: "dev.cvm/environment",
  build: "dev.cvm/build",
  kind: "dev.cvm/kind",
} as const;

export const annotations = {
  name: "dev.cvm/name",
  owner: "dev.cvm/owner",
  image: "dev.cvm/image",
  /** On a claim: the next Pod starts the inner Docker from empty data (a rebuild without keepDockerData). */
  discardDockerData: "dev.cvm/discard-docker-data",
} as const;

/** Selects every object cvm manages in its namespace. */
export const managedSelector = `${labels.managed}=true`;

/** Environment ids (`env_<hex>`) are not DNS labels; names use a dash instead. */
function base(environmentId: string): string {
  return `cvm-${environmentId.toLowerCase().replace(/[^a-z0-9-]/g, "-")}`;
}

export interface ObjectNames {
  pod: string;
  claim: string;
  secret: string;
}

export function objectNames(environmentId: string): ObjectNames {
  const name = base(environmentId);
  return { pod: name, claim: `${name}-home`, secret: name };
}

/** Where things sit inside the supervisor container. */
export const supervisorPaths = {
  home: "/var/lib/cvm/volumes/home",
  dockerData: "/var/lib/cvm/volumes/docker",
  runtime: "/var/lib/cvm/runtime",
  /** Written by the supervisor once the environment is ready; the readiness probe looks for it. */
  ready: "/var/lib/cvm/runtime/ready",
  /** The environment's Secret (registry credentials), when it has one. */
  secrets: "/var/run/secrets/cvm",
  /** The Pod's projected service-account token for cvm's audience (report-token.ts), renewed by the kubelet. */
  reportToken: "/var/run/secrets/cvm-report/token",
} as const;

/** Keys of the environment's Secret, which exists only when the environment has registry credentials. */
export const secretKeys = {
  /** Registry credentials, in the format kubelets and engines read. */
  registryAuth: ".dockerconfigjson",
} as const;

export const supervisorContainer = "supervisor";
export const environmentContainer = "environment";
