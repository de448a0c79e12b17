/**
 * API clients that keep their connections. The client library gives every
 * request a new agent, so a new TLS handshake; at hundreds of environments
 * that is most of the cost on both sides. Here every request of a KubeConfig
 * goes through one keep-alive agent, while credentials (a rotated token
 * file, say) are still applied per request.
 */

import { Agent, type RequestOptions } from "node:https";
import {
  type Configuration,
  createConfiguration,
  type KubeConfig,
  type RequestContext,
  ServerConfiguration,
} from "@kubernetes/client-node";

const agents = new WeakMap<KubeConfig, Promise<Agent>>();

async function sharedAgent(config: KubeConfig): Promise<Agent> {
  let agent = agents.get(config);
  if (!agent) {
    agent = (async () => {
      const options: RequestOptions = {};
      await config.applyToHTTPSOptions(options);
      const cluster = config.getCurrentCluster();
      return new Agent({
        ca: options.ca,
        cert: options.cert,
        key: options.key,
        pfx: options.pfx,
        passphrase: options.passphrase,
        rejectUnauthorized: !cluster?.skipTLSVerify,
        servername: cluster?.tlsServerName,
        keepAlive: true,
        maxSockets: 64,
      });
    })();
    agents.set(config, agent);
  }
  return agent;
}

export function apiClient<T>(config: KubeConfig, api: new (configuration: Configuration) => T): T {
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig names no current cluster");
  const authentication = {
    getName: () => "cvm-keepalive",
    applySecurityAuthentication: async (context: RequestContext) => {
      await config.applySecurityAuthentication(context);
      // Plain HTTP (a test proxy) keeps the library's own agent.
      if (cluster.server.startsWith("https:")) context.setAgent(await sharedAgent(config));
    },
  };
  return new api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: authentication },
    }),
  );
}
