/**
 * cvm server: opens the store, creates the provider, reconciles what the
 * provider has with what the store says, and serves the API, the terminal,
 * the dashboard and /metrics until closed.
 */

import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer, type Http2Bindings, type HttpBindings } from "@hono/node-server";
import { type Logger, pino } from "pino";
import { createApp } from "../api/app.js";
import { attachPortProxyUpgrades } from "../api/port-proxy.js";
import { attachPortConnect } from "../api/ports.js";
import { attachSsh } from "../api/ssh.js";
import { attachTerminal } from "../api/terminal.js";
import { Upgrades } from "../api/upgrade.js";
import type { Provider } from "../core/provider.js";
import type { Store } from "../core/store.js";
import { createProvider } from "../providers/index.js";
import { openStore } from "../store/index.js";
import { Accounts } from "./accounts.js";
import { AuditLog } from "./audit-log.js";
import { EnvironmentService } from "./environments/index.js";
import { EventBus } from "./event-bus.js";
import { createMetrics } from "./metrics.js";
import { SettingsService } from "./settings-service.js";
import { createWorkspace } from "./workspace.js";

export interface ServerOptions {
  /** host:port; port 0 picks a free one. Default 127.0.0.1:7080. */
  listen: string;
  dataDir: string;
  postgresUrl?: string;
  provider: "docker" | "kubernetes";
  dockerHost?: string;
  kubeconfig?: string;
  namespace?: string;
  logLevel?: string;
  /** A logger to use instead of a new one (tests pass a silent one). */
  logger?: Logger;
  /** Where the built dashboard is; default web/dist of this checkout. */
  webRoot?: string;
  /** Mark the session cookie Secure (behind HTTPS). */
  secureCookies?: boolean;
  /** A provider already made, used instead of creating one from `provider` (embedding; tests). */
  providerInstance?: Provider;
  /** Skip the reconcile at start (a second replica starting beside a busy first). */
  skipReconcile?: boolean;
}

export interface RunningServer {
  /** Base URL, such as http://127.0.0.1:7080 */
  url: string;
  /** The store the server uses (tests and benchmarks seed it directly). */
  store: Store;
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen.trim());
  if (!match) throw new Error(`--listen must be host:port, such as 127.0.0.1:7080 (got "${listen}")`);
  return { host: match[1] ?? (match[2] || "127.0.0.1"), port: Number(match[3]) };
}

type Fetch = (request: Request, bindings: HttpBindings | Http2Bindings) => Response | Promise<Response>;

/** The URL clients reach a listening address at; an unspecified address is reached on loopback. */
function urlOf(address: AddressInfo): string {
  const loopback: Record<string, string> = { "0.0.0.0": "127.0.0.1", "::": "::1" };
  const host = loopback[address.address] ?? address.address;
  return `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
}

/**
 * Listens first (answering 503 while starting), so the provider is told the
 * server's real URL even for port 0; then creates the provider, reconciles,
 * and starts answering.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const logger = options.logger ?? pino({ level: options.logLevel ?? "info", base: { service: "cvm-server" } });
  const { host, port } = parseListen(options.listen);
  const store = await openStore({ dataDir: options.dataDir, postgresUrl: options.postgresUrl });
  let handler: Fetch | undefined;
  const starting = () =>
    new Response(JSON.stringify({ message: "The server is starting; try again in a moment" }), {
      status: 503,
      headers: { "content-type": "application/json", "retry-after": "1" },
    });
  const server = createAdaptorServer({
    fetch: (request: Request, bindings: HttpBindings | Http2Bindings) =>
      handler ? handler(request, bindings) : starting(),
    hostname: host,
  }) as Server;
  let provider: Provider | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const url = urlOf(server.address() as AddressInfo);
    provider =
      options.providerInstance ??
      (await createProvider({
        kind: options.provider,
        dataDir: options.dataDir,
        logger: logger.child({ component: "provider" }),
        dockerHost: options.dockerHost,
        kubeconfig: options.kubeconfig,
        namespace: options.namespace,
        serverUrl: url,
      }));
    const running = await serve(options, logger, store, provider, server, url);
    handler = running.fetch;
    return running.server;
  } catch (error) {
    await new Promise((resolve) => server.close(resolve));
    await provider?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw error;
  }
}

async function serve(
  options: ServerOptions,
  logger: Logger,
  store: Store,
  provider: Provider,
  server: Server,
  url: string,
): Promise<{ server: RunningServer; fetch: Fetch }> {
  const shutdown = new AbortController();
  const bus = new EventBus();
  const metrics = createMetrics(store);
  const audit = new AuditLog(store);
  const settings = new SettingsService(store, audit, {
    provider: options.provider,
    dockerHost: options.dockerHost,
    kubeconfig: options.kubeconfig,
    namespace: options.namespace,
    dataDir: options.dataDir,
  });
  const environments = new EnvironmentService({ store, provider, settings, audit, bus, metrics, logger });
  const deps = {
    store,
    provider,
    accounts: new Accounts(store),
    audit,
    settings,
    environments,
    bus,
    metrics,
    workspace: await createWorkspace({
      dataDir: options.dataDir,
      store,
      provider,
      environments,
      settings,
      audit,
      logger,
    }),
    logger,
    shutdown: shutdown.signal,
    secureCookies: options.secureCookies ?? false,
  };

  if (!options.skipReconcile) {
    const report = await environments.reconcile({ removeOrphans: false });
    if (report.orphans.length > 0) {
      logger.warn(
        { orphans: report.orphans },
        "workloads with cvm's labels and no environment; POST /api/v1/admin/reconcile?removeOrphans=1 removes them",
      );
    }
  }

  const { app } = createApp(deps, { webRoot: options.webRoot });
  deps.workspace.start();
  const upgrades = new Upgrades(server, deps);
  // A port's own host claims every path on it, so its WebSockets are matched first.
  attachPortProxyUpgrades(upgrades, deps);
  const terminal = attachTerminal(upgrades, deps);
  const ssh = attachSsh(upgrades, deps);
  const portConnections = attachPortConnect(upgrades, deps);
  logger.info(
    { url, store: options.postgresUrl ? "postgres" : "sqlite", provider: provider.name },
    "cvm server listening",
  );

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      shutdown.abort();
      upgrades.close();
      await deps.workspace.close();
      terminal.close();
      ssh.close();
      portConnections.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await environments.close();
      // Streams end on the shutdown signal; whatever still hangs is cut (a timer that holds the
      // process until then: close() resolves whatever else is left running).
      const cut = setTimeout(() => server.closeAllConnections(), 2000);
      await stopped;
      clearTimeout(cut);
      await provider.close().catch((error) => logger.warn({ err: error }, "closing the provider"));
      await store.close();
      logger.info("cvm server stopped");
    })();
    return closing;
  };
  return { server: { url, store, close }, fetch: (request, bindings) => app.fetch(request, bindings) };
}
