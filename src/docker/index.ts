/**
 * cvm's engine toolkit: what every part that talks to a Docker engine shares
 * (the docker provider with the host's engine, the CVM supervisor with cvm's
 * own, the doctor and `cvm image check`), so each job is done one way.
 */

export { removeContainer, stopContainer } from "./container-ends.js";
export { defaultDockerHost, dockerHostOf, engineOptions, isLocalEngine } from "./engine-address.js";
export { dockerClient } from "./engine-client.js";
export { ignoreMissing, ignoring, isNotFound, statusOf } from "./engine-errors.js";
export { type ExecEngine, startExec } from "./exec-session.js";
export {
  copyImage,
  type EnsureImageOptions,
  ensureImage,
  type ImageSource,
  imageId,
  type PullFailureReport,
  type PullOptions,
  pullError,
  pullWithRetry,
  registryDigest,
} from "./image-pull.js";
export {
  homeVolumeName,
  installationFilters,
  installationLabels,
  installationTag,
  isInstallations,
  labels,
  listLabeledWorkloads,
  listRunningAddresses,
  managedFilter,
  type RunningAddress,
} from "./labels.js";
