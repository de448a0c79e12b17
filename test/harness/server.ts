/**
 * A real cvm server for tests and benchmarks, started as `cvm server` starts
 * it, over real HTTP on a free loopback port: a fresh data dir (removed on
 * close), SQLite in it or a fresh PostgreSQL database of its own (dropped on
 * close), the docker provider on the test engine, the kubernetes provider on
 * a test cluster, or a provider the caller made (the fake). Every test and
 * benchmark that needs a server starts it here, and signs in through the
 * typed client the same way.
 */

import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { CvmClient } from "../../src/client/index.js";
import type { Provider } from "../../src/core/provider.js";
import type { Role } from "../../src/core/roles.js";
import type { User } from "../../src/core/user.js";
import { createProvider } from "../../src/providers/index.js";
import { type RunningServer, startServer } from "../../src/server/index.js";
import { type FreshDatabase, freshPostgresUrl } from "../../src/store/testing.js";

export const storeKinds = ["sqlite", "postgres"] as const;
export type StoreKind = (typeof storeKinds)[number];

/** Every account the harness makes has this password. */
export const password = "correct horse battery";

/** The engine `npm test` names (CVM_TEST_HOST_DOCKER), or the provider's own default. */
export const testDockerHost = process.env.CVM_TEST_HOST_DOCKER
  ? `unix://${process.env.CVM_TEST_HOST_DOCKER}`
  : undefined;

export interface TestServerOptions {
  /** sqlite (the default) in the data dir; postgres, a fresh database dropped on close; or a database the caller owns. */
  store?: StoreKind | { postgresUrl: string };
  /** docker (the default) on the test engine; kubernetes with `kubeconfig` and `namespace`; or a provider made by the caller. */
  provider?: "docker" | "kubernetes" | Provider;
  kubeconfig?: string;
  namespace?: string;
  /** An existing data dir (a server restarted on another's state), kept on close; by default a fresh one. */
  dataDir?: string;
  /** A CVM's remapped root must reach its volumes under the data dir: open the fresh one to it. */
  cvms?: boolean;
  /** The built dashboard to serve; by default none (the API alone). */
  webRoot?: string;
  /** Default: CVM_TEST_LOG_LEVEL, else error; to stderr. */
  logLevel?: string;
  skipReconcile?: boolean;
}

export type SignedIn = CvmClient & { user: User };

export interface TestServer {
  server: RunningServer;
  url: string;
  dataDir: string;
  /** A client without credentials. */
  anonymous(): CvmClient;
  /** Creates the first site admin, or signs in as it when it exists; a client signed in as it. */
  firstAdmin(): Promise<SignedIn>;
  /** Creates a user (through the admin) and returns a client signed in as it. */
  userWithRole(admin: CvmClient, role: Role, email?: string): Promise<SignedIn>;
  signIn(email: string): Promise<SignedIn>;
  /** Stops the server and starts it again on the same port, data dir and store, as a restart would. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

let counter = 0;

export async function startTestServer(options: TestServerOptions | StoreKind = {}): Promise<TestServer> {
  const opts = typeof options === "string" ? { store: options } : options;
  const ownDataDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "cvm-test-server-"));
  if (ownDataDir && opts.cvms) chmodSync(dataDir, 0o755);
  let database: FreshDatabase | undefined;
  const cleanUp = async () => {
    await database?.drop();
    if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  const provider = opts.provider ?? "docker";
  const start = (listen: string) =>
    startServer({
      listen,
      dataDir,
      postgresUrl: typeof opts.store === "object" ? opts.store.postgresUrl : database?.url,
      provider: typeof provider === "string" ? provider : "docker",
      providerInstance: typeof provider === "string" ? undefined : provider,
      dockerHost: testDockerHost,
      kubeconfig: opts.kubeconfig,
      namespace: opts.namespace,
      logger: pino({ level: opts.logLevel ?? process.env.CVM_TEST_LOG_LEVEL ?? "error" }, pino.destination(2)),
      webRoot: opts.webRoot ?? join(dataDir, "no-dashboard"),
      skipReconcile: opts.skipReconcile,
    });
  let server: RunningServer;
  try {
    if (opts.store === "postgres") database = await freshPostgresUrl();
    server = await start("127.0.0.1:0");
  } catch (error) {
    await cleanUp();
    throw error;
  }
  const anonymous = () => new CvmClient({ baseUrl: server.url });
  const signIn = async (email: string) => {
    const client = anonymous();
    const session = await client.login({ email, password });
    client.token = session.token;
    return Object.assign(client, { user: session.user });
  };
  const test: TestServer = {
    server,
    url: server.url,
    dataDir,
    anonymous,
    signIn,
    async firstAdmin() {
      const client = anonymous();
      if (!(await client.setupStatus()).needsFirstAdmin) return signIn("admin@example.com");
      const session = await client.createFirstAdmin({ email: "admin@example.com", password });
      client.token = session.token;
      return Object.assign(client, { user: session.user });
    },
    async userWithRole(admin, role, email = `user${++counter}-${role}@example.com`) {
      await admin.createUser({ email, password, role });
      return signIn(email);
    },
    async restart() {
      await server.close();
      // This process's clients keep connections to the old server alive; a turn of the event
      // loop that polls for I/O lets them see those connections closed before they ask the new one.
      await sleep(10);
      server = await start(new URL(server.url).host);
      test.server = server;
    },
    async close() {
      await server.close();
      await cleanUp();
    },
  };
  return test;
}

/** The real docker provider on the test engine, beside a server's own; the caller closes it (which removes its scratch directory). */
export async function openProvider(): Promise<Provider> {
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-test-provider-"));
  const provider = await createProvider({
    kind: "docker",
    dataDir,
    logger: pino({ level: "silent" }),
    dockerHost: testDockerHost,
  });
  const close = provider.close.bind(provider);
  provider.close = async () => {
    await close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return provider;
}
