/**
 * cvm server: opens the store, creates the provider, reconciles what the
 * provider has with what the store says, and serves the API, the terminal,
 * the dashboard and /metrics until closed.
 */

import { mkdirSync, readFileSync } from "node:fs";
import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { createAdaptorServer, type Http2Bindings, type HttpBindings } from "@hono/node-server";
import { Hono } from "hono";
import { type Logger, pino } from "pino";
import { createApp } from "../api/app.js";
import { metricsEndpoint } from "../api/metrics-endpoint.js";
import { attachPortProxyUpgrades } from "../api/port-proxy.js";
import { attachPortConnect } from "../api/ports.js";
import type { SiteAddress } from "../api/request-origin.js";
import { attachSsh } from "../api/ssh.js";
import { attachTerminal } from "../api/terminal.js";
import { Upgrades } from "../api/upgrade.js";
import { within } from "../core/deadline.js";
import { CvmError } from "../core/errors.js";
import type { Provider } from "../core/provider.js";
import type { Store } from "../core/store.js";
import { createProvider } from "../providers/index.js";
import { openStore, restoreBackup } from "../store/index.js";
import { Accounts } from "./accounts.js";
import { AuditLog } from "./audit-log.js";
import { EnvironmentService } from "./environments/index.js";
import { EventBus } from "./event-bus.js";
import { installationId } from "./installation.js";
import { LoginThrottle } from "./login-throttle.js";
import { createMetrics, type ServerMetrics } from "./metrics.js";
import { OpenConnections } from "./open-connections.js";
import { resealCredentials, sealCredentials } from "./sealed-credentials.js";
import { SecretBox } from "./secret-box.js";
import { loadSecretKeys } from "./secret-keys.js";
import { SettingsService } from "./settings-service.js";
import { SetupCode } from "./setup-code.js";
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
  /** Hears each answer that breaks the OpenAPI document, instead of failing loudly under test (the fuzz test counts them). */
  onMismatch?: (mismatch: string) => void;
  /** Skip the reconcile at start (a second replica starting beside a busy first). */
  skipReconcile?: boolean;
  /** How long a start waits for the provider (settings, reconcile) before answering anyway (20 s; tests make it short). */
  startupWaitMs?: number;
  /** The URL people reach the server at (--access-url); Host headers must name it. Default: the listen address. */
  accessUrl?: string;
  /** Trust X-Forwarded-For, -Proto and -Host from the one reverse proxy in front (--proxy-trusted). */
  proxyTrusted?: boolean;
  /** The first-run setup code to use instead of a random one (CVM_SETUP_CODE). */
  setupCode?: string;
  /** PEM files: serve HTTPS, and mark the session cookie Secure. */
  tlsCert?: string;
  tlsKey?: string;
  /** /metrics requires `Authorization: Bearer <token>` (CVM_METRICS_TOKEN: not a flag, which ps would show). */
  metricsToken?: string;
  /** Serve /metrics on this host:port alone, not on the main address (--metrics-listen). */
  metricsListen?: string;
  /** Start from this backup (`cvm admin backup`), copied into the data dir, which must have no database yet. */
  restoreFrom?: string;
}

export interface RunningServer {
  /** Base URL, such as http://127.0.0.1:7080 */
  url: string;
  /** The store the server uses (tests and benchmarks seed it directly). */
  store: Store;
  /** The first-run setup code while no account exists (it is also in the log). */
  readonly setupCode: string | undefined;
  /** Where /metrics is served when it has an address of its own. */
  metricsUrl?: string;
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen.trim());
  if (!match) throw new Error(`--listen must be host:port, such as 127.0.0.1:7080 (got "${listen}")`);
  return { host: match[1] ?? (match[2] || "127.0.0.1"), port: Number(match[3]) };
}

const maxHeaderSize = 256 * 1024;
/**
 * How long a start waits on a provider before answering anyway: an engine
 * stuck on one container must not keep every user from every environment.
 */
const startupWaitMs = 20_000;

/**
 * Waits for a step of the start for `ms` at most: its failure in that time
 * fails the start; after that the server answers meanwhile, and a late
 * failure is logged.
 */
async function untilOrMeanwhile(step: Promise<unknown>, ms: number, logger: Logger, what: string): Promise<void> {
  if (
    await within(
      step.then(() => true),
      ms,
    )
  )
    return;
  logger.warn({ waitedMs: ms }, `${what} goes on: answering meanwhile`);
  step.catch((error) => logger.error({ err: error }, `${what} failed`));
}

type Fetch = (request: Request, bindings: HttpBindings | Http2Bindings) => Response | Promise<Response>;

/** The URL clients reach a listening address at; an unspecified address is reached on loopback. */
function urlOf(address: AddressInfo, protocol: "http" | "https" = "http"): string {
  const loopback: Record<string, string> = { "0.0.0.0": "127.0.0.1", "::": "::1" };
  const host = loopback[address.address] ?? address.address;
  return `${protocol}://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
}

function listen(server: Server, listenAt: string): Promise<AddressInfo> {
  const { host, port } = parseListen(listenAt);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** HTTPS with --tls-cert and --tls-key (both or neither); read once at start. */
function tlsOptions(options: ServerOptions): { cert: Buffer; key: Buffer } | undefined {
  if (!options.tlsCert && !options.tlsKey) return undefined;
  if (!options.tlsCert || !options.tlsKey) {
    throw new CvmError("BAD_REQUEST", "--tls-cert and --tls-key go together: give both PEM files, or neither");
  }
  return { cert: readFileSync(options.tlsCert), key: readFileSync(options.tlsKey) };
}

/**
 * The store as the server uses it: restored from a backup first when asked,
 * and with registry passwords sealed under the key from outside the database
 * (every one not sealed under the current key is sealed again now).
 */
async function openSealedStore(options: ServerOptions, logger: Logger): Promise<Store> {
  if (options.restoreFrom) {
    if (options.postgresUrl) {
      throw new CvmError("BAD_REQUEST", "--restore brings back a SQLite backup; restore PostgreSQL with pg_restore");
    }
    restoreBackup(options.restoreFrom, options.dataDir);
    logger.warn({ from: options.restoreFrom, dataDir: options.dataDir }, "restored the store from a backup");
  }
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const keys = loadSecretKeys(options.dataDir);
  const box = new SecretBox(keys.current, keys.previous);
  const raw = await openStore({ dataDir: options.dataDir, postgresUrl: options.postgresUrl });
  try {
    await resealCredentials(raw, box, logger);
  } catch (error) {
    await raw.close();
    throw error;
  }
  if (options.postgresUrl && !process.env.CVM_SECRET_KEY) {
    logger.warn(
      { keyFile: keys.source },
      "secrets are sealed with this data dir's key file: replicas sharing the database need the same key, so set CVM_SECRET_KEY on each",
    );
  }
  logger.info({ key: box.currentKeyId, source: keys.source }, "stored secrets are sealed (AES-256-GCM)");
  return sealCredentials(raw, box);
}

/**
 * Listens first (answering 503 while starting), so the provider is told the
 * server's real URL even for port 0; then creates the provider, reconciles,
 * and starts answering.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const logger =
    options.logger ??
    pino({ level: options.logLevel ?? "info", base: { service: "cvm-server" }, redact: redactedPaths });
  const { host } = parseListen(options.listen);
  const tls = tlsOptions(options);
  const store = await openSealedStore(options, logger);
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
    // Room for the longest request line the API documents (a terminal's command, percent-encoded), so Node's
    // parser never answers a bare 431 to a request the API would answer itself.
    ...(tls
      ? { createServer: createHttpsServer, serverOptions: { ...tls, maxHeaderSize } }
      : { serverOptions: { maxHeaderSize } }),
  }) as Server;
  let provider: Provider | undefined;
  try {
    const url = urlOf(await listen(server, options.listen), tls ? "https" : "http");
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
        installationId: await installationId(store),
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
    // The trial Pod is labeled with the installation, as its environments' objects are.
    trial: { installationId: await installationId(store) },
  });
  const environments = new EnvironmentService({ store, provider, settings, audit, bus, metrics, logger });
  const connections = new OpenConnections(store, { logger });
  // Port connections a change here no longer allows end now, not at the next poll (src/server/ports-service.ts).
  settings.onChange(() => connections.recheck());
  bus.subscribe((event) => {
    if (event.type === "deleted" || event.environment.state !== "running") void connections.recheck();
  });
  const setup = new SetupCode(store, logger, options.setupCode ?? process.env.CVM_SETUP_CODE);
  const waitMs = options.startupWaitMs ?? startupWaitMs;
  if (provider.configure) {
    await untilOrMeanwhile(
      provider.configure(await settings.get()),
      waitMs,
      logger,
      "the provider taking the settings in",
    );
    settings.onChange((changed) => provider.configure?.(changed) ?? Promise.resolve());
  }
  const deps = {
    store,
    provider,
    accounts: new Accounts(store, { connections, throttle: new LoginThrottle(store, audit) }),
    connections,
    setup,
    site: siteAddress(options, url),
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
      connections,
      logger,
    }),
    logger,
    shutdown: shutdown.signal,
    // Over HTTPS, whether served here or behind a proxy whose access URL says so.
    secureCookies:
      options.secureCookies ?? (url.startsWith("https:") || options.accessUrl?.startsWith("https:") || false),
  };

  // Answered before the server is, unless an engine is slow to say how its workloads stand: then the server
  // answers meanwhile, and a request about an environment still being settled waits for it (per-environment lock).
  const reconciling = options.skipReconcile
    ? undefined
    : environments.reconcile({ removeOrphans: false }).then((report) => {
        if (report.orphans.length > 0) {
          logger.warn(
            { orphans: report.orphans },
            "workloads with cvm's labels and no environment; POST /api/v1/admin/reconcile?removeOrphans=1 removes them",
          );
        }
      });
  if (reconciling) await untilOrMeanwhile(reconciling, waitMs, logger, "reconcile");

  await environments.pools?.start();

  const metricsToken = options.metricsToken ?? process.env.CVM_METRICS_TOKEN;
  const { app } = createApp(deps, {
    webRoot: options.webRoot,
    onMismatch: options.onMismatch,
    metrics: { token: metricsToken, ownAddress: Boolean(options.metricsListen) },
  });
  const metricsServer = options.metricsListen
    ? await serveMetrics(options.metricsListen, metrics, metricsToken)
    : undefined;
  deps.workspace.start();
  const upgrades = new Upgrades(server, deps);
  // A port's own host claims every path on it, so its WebSockets are matched first.
  attachPortProxyUpgrades(upgrades, deps);
  const terminal = attachTerminal(upgrades, deps);
  const ssh = attachSsh(upgrades, deps);
  const portConnections = attachPortConnect(upgrades, deps);
  logger.info(
    {
      url,
      accessUrl: deps.site.accessUrl.origin,
      store: options.postgresUrl ? "postgres" : "sqlite",
      provider: provider.name,
    },
    "cvm server listening",
  );
  await setup.announce();

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      shutdown.abort();
      connections.close();
      upgrades.close();
      await deps.workspace.close();
      terminal.close();
      ssh.close();
      portConnections.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await environments.close();
      // A reconcile still settling (an engine that stopped answering) gets a moment before the store closes.
      if (reconciling)
        await within(
          reconciling.catch(() => undefined),
          5000,
        );
      // Streams end on the shutdown signal; whatever still hangs is cut (a timer that holds the
      // process until then: close() resolves whatever else is left running).
      const cut = setTimeout(() => server.closeAllConnections(), 2000);
      await stopped;
      clearTimeout(cut);
      await metricsServer?.close();
      await provider.close().catch((error) => logger.warn({ err: error }, "closing the provider"));
      await store.close();
      logger.info("cvm server stopped");
    })();
    return closing;
  };
  return {
    server: {
      url,
      store,
      get setupCode() {
        return setup.current;
      },
      metricsUrl: metricsServer?.url,
      close,
    },
    fetch: (request, bindings) => app.fetch(request, bindings),
  };
}

/** /metrics on an address of its own, and nothing else there. */
async function serveMetrics(
  listenAt: string,
  metrics: ServerMetrics,
  token: string | undefined,
): Promise<{ url: string; close(): Promise<void> }> {
  const app = new Hono();
  app.get("/metrics", metricsEndpoint(metrics, token));
  const server = createAdaptorServer({ fetch: app.fetch, hostname: parseListen(listenAt).host }) as Server;
  const url = urlOf(await listen(server, listenAt));
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Never in a log line: passwords, secrets, tokens, credentials, the
 * Authorization and Cookie headers, wherever they sit in a logged object.
 */
export const redactedPaths = {
  paths: [
    "password",
    "*.password",
    "secret",
    "*.secret",
    "token",
    "*.token",
    "registryCredentials",
    "*.registryCredentials",
    "credentials",
    "*.credentials",
    "authorization",
    "*.authorization",
    "*.headers.authorization",
    "cookie",
    "*.cookie",
    "*.headers.cookie",
  ],
  censor: "[redacted]",
};

/** The access URL (default: where the server listens) and the other names it answers to. */
function siteAddress(options: ServerOptions, url: string): SiteAddress {
  let accessUrl: URL;
  try {
    accessUrl = new URL(options.accessUrl ?? url);
  } catch {
    throw new CvmError(
      "BAD_REQUEST",
      `--access-url must be a URL such as https://cvm.example.com (got "${options.accessUrl}")`,
    );
  }
  const reportUrl = process.env.CVM_SUPERVISOR_REPORT_URL;
  const otherHosts = [new URL(url).host, ...(reportUrl && URL.canParse(reportUrl) ? [new URL(reportUrl).host] : [])];
  return { accessUrl, otherHosts, proxyTrusted: options.proxyTrusted ?? false };
}
