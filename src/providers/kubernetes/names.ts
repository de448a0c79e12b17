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

export const supervisorContainer = "supervisor";
export const environmentContainer = "environment";
