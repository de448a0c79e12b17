/** Chooses the provider; the server sees only the Provider interface. */

import type { Logger } from "pino";
import type { Provider } from "../core/provider.js";

export interface ProviderOptions {
  kind: "docker" | "kubernetes";
  /** The server's data directory: cvm's own isolated engine keeps its state below it. */
  dataDir: string;
  logger: Logger;
  /**
   * The installation's id (the store's; cvm server always passes it): every
   * object the provider makes carries it, and it lists and removes no other.
   * Without one (a test's or a tool's own provider) every cvm object is its.
   */
  installationId?: string;
  /** docker: the host engine, such as unix:///var/run/docker.sock (the default). */
  dockerHost?: string;
  /** kubernetes: a kubeconfig file; when absent, in-cluster config in a cluster, else KUBECONFIG or ~/.kube/config. */
  kubeconfig?: string;
  namespace?: string;
  /** kubernetes: the URL supervisors report build logs to. */
  serverUrl?: string;
}

export async function createProvider(options: ProviderOptions): Promise<Provider> {
  if (options.kind === "kubernetes") {
    const { createKubernetesProvider } = await import("./kubernetes/index.js");
    return createKubernetesProvider(options);
  }
  const { createDockerProvider } = await import("./docker/index.js");
  return createDockerProvider(options);
}
