/** `cvm server`: runs the API, the dashboard and the providers until stopped. */

import { homedir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { defaultDockerHost } from "../docker/engine-address.js";

interface ServerFlags {
  listen: string;
  dataDir: string;
  postgresUrl?: string;
  provider: "docker" | "kubernetes";
  dockerHost?: string;
  kubeconfig?: string;
  namespace?: string;
  logLevel?: string;
  accessUrl?: string;
  proxyTrusted?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  metricsListen?: string;
  restore?: string;
}

export function register(program: Command): void {
  program
    .command("server")
    .description("run the cvm server")
    .option("--listen <host:port>", "address to serve on", "127.0.0.1:7080")
    .option("--data-dir <dir>", "where state lives", join(homedir(), ".local", "share", "cvm"))
    .option("--postgres-url <url>", "keep state in PostgreSQL instead of SQLite (several replicas)")
    .option("--provider <provider>", "docker or kubernetes", "docker")
    .option("--docker-host <url>", "the engine for standard environments", defaultDockerHost)
    .option(
      "--kubeconfig <file>",
      "kubernetes provider: a kubeconfig; in-cluster config (KUBECONFIG or ~/.kube/config outside a cluster) when absent",
    )
    .option("--namespace <namespace>", "kubernetes provider: the namespace of this installation")
    .option("--log-level <level>", "trace, debug, info, warn, error", "info")
    .option(
      "--access-url <url>",
      "the URL people reach the server at, such as https://cvm.example.com; requests naming another host are refused (421). Default: the listen address",
    )
    .option(
      "--proxy-trusted",
      "behind one reverse proxy that sets X-Forwarded-For, -Proto and -Host: trust them (client address, HTTPS, host)",
    )
    .option(
      "--tls-cert <file>",
      "serve HTTPS with this PEM certificate (with --tls-key); the session cookie is then Secure",
    )
    .option("--tls-key <file>", "the PEM private key of --tls-cert")
    .option(
      "--metrics-listen <host:port>",
      "serve /metrics on this address alone instead of the main one; CVM_METRICS_TOKEN makes it require a Bearer token",
    )
    .option(
      "--restore <file>",
      "start from a backup made by `cvm admin backup` (into a data dir without a database; the secret key travels apart)",
    )
    .action(async (flags: ServerFlags) => {
      if (flags.provider !== "docker" && flags.provider !== "kubernetes") {
        throw new Error("--provider takes docker or kubernetes");
      }
      const { restore, ...rest } = flags;
      // The server, its store and providers load only for this command.
      const { startServer } = await import("../server/index.js");
      const server = await startServer({
        ...rest,
        restoreFrom: restore,
        postgresUrl: flags.postgresUrl ?? process.env.CVM_POSTGRES_URL,
      });
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        await server.close();
        process.exit(0);
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
}
