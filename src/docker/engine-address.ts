/**
 * What an engine address means, as DOCKER_HOST writes it: one parser for
 * every part of cvm that talks to an engine (the docker provider, the CVM
 * supervisor copying from the node's engine, `cvm image check`, the doctor),
 * so an address means the same thing to each. No engine client here: the CLI
 * reads the default address for its help without loading one.
 */

import type Dockerode from "dockerode";
import { CvmError } from "../core/errors.js";

export const defaultDockerHost = "unix:///var/run/docker.sock";

/** The engine a command talks to: the one it was given, else DOCKER_HOST, else the local socket. */
export function dockerHostOf(given?: string): string {
  return given ?? process.env.DOCKER_HOST ?? defaultDockerHost;
}

type Scheme = (url: URL) => Dockerode.DockerOptions;

const overHttp: Scheme = (url) => ({ host: url.hostname, port: Number(url.port || 2375), protocol: "http" });

/** How each scheme reaches the engine; tcp:// is the engine's plain HTTP port, as the Docker CLI reads it. */
const schemes: Record<string, Scheme> = {
  "tcp:": overHttp,
  "http:": overHttp,
  "https:": (url) => ({ host: url.hostname, port: Number(url.port || 2376), protocol: "https" }),
};

/** unix:///path, /path, tcp://host:port, http(s)://host:port to dockerode's options. */
export function engineOptions(address: string): Dockerode.DockerOptions {
  if (address.startsWith("/")) return { socketPath: address };
  if (address.startsWith("unix://")) return { socketPath: address.slice("unix://".length) };
  const url = URL.canParse(address) ? new URL(address) : undefined;
  const scheme = url?.hostname ? schemes[url.protocol] : undefined;
  if (!url || !scheme) {
    throw new CvmError("BAD_REQUEST", `A Docker host is unix:///path, /path or tcp://host:port, not ${address}`, {
      validations: [{ field: "dockerHost", detail: "must be unix:///path, /path or tcp://host:port" }],
    });
  }
  return scheme(url);
}

/** The engine runs on this host (a socket), so the pids it reports are pids here. */
export function isLocalEngine(address: string): boolean {
  return "socketPath" in engineOptions(address);
}
