/**
 * cvm's Kubernetes toolkit: what the kubernetes provider and the doctor's
 * cluster checks share to reach a cluster (which kubeconfig and namespace,
 * clients that keep their connections) and to read its refusals.
 */

export { apiClient } from "./api-client.js";
export { apiMessage, clusterRefusal, isConflict, isNotFound, statusOf } from "./errors.js";
export { defaultNamespace, loadKubeConfig } from "./kubeconfig.js";
