/**
 * Which cluster and namespace cvm talks to, decided one way for the provider
 * and the doctor: a kubeconfig file when given; inside a cluster, the Pod's
 * ServiceAccount; elsewhere KUBECONFIG or ~/.kube/config.
 */

import { readFileSync } from "node:fs";
import { KubeConfig } from "@kubernetes/client-node";

const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

export function loadKubeConfig(kubeconfig?: string): KubeConfig {
  const config = new KubeConfig();
  if (kubeconfig) config.loadFromFile(kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) config.loadFromCluster();
  else config.loadFromDefault();
  return config;
}

/** The namespace given; else, in a cluster without a kubeconfig file, the Pod's own; else `cvm`. */
export function defaultNamespace(options: { namespace?: string; kubeconfig?: string }): string {
  if (options.namespace) return options.namespace;
  if (!options.kubeconfig) {
    try {
      const own = readFileSync(inClusterNamespaceFile, "utf8").trim();
      if (own) return own;
    } catch {
      // not in a cluster: fall through
    }
  }
  return "cvm";
}
