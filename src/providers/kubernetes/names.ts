/**
 * What cvm calls its objects in a cluster: names derived from the
 * environment's id, and the labels and annotations that say an object is
 * cvm's, which environment it belongs to and which build made it.
 */

export const labels = {
  managed: "dev.cvm/managed",
  /** The installation (its store's id) that made the object: a second installation in the namespace leaves it be. */
  installation: "dev.cvm/installation",
  environment: "dev.cvm/environment",
  build: "dev.cvm/build",
  kind: "dev.cvm/kind",
  /** The doctor's trial of the supervisor Pod (src/infra/supervisor-trial.ts): never an environment's. */
  trial: "dev.cvm/trial",
} as const;

export const annotations = {
  name: "dev.cvm/name",
  owner: "dev.cvm/owner",
  image: "dev.cvm/image",
  /** On a claim: the next Pod starts the inner Docker from empty data (a rebuild without keepDockerData). */
  discardDockerData: "dev.cvm/discard-docker-data",
} as const;

/** Selects every object cvm manages in its namespace, whichever installation made it. */
export const managedSelector = `${labels.managed}=true`;

/** Selects the objects of one installation (without an id, a test's or tool's own provider: every cvm object). */
export function installationSelector(installationId: string | undefined): string {
  return installationId ? `${managedSelector},${labels.installation}=${installationId}` : managedSelector;
}

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
