/**
 * A real cvm server for tests and benchmarks, started as `cvm server` starts
 * it, over real HTTP on a free loopback port: a fresh data dir (removed on
 * close), SQLite in it or a fresh PostgreSQL database of its own (dropped on
 * close), the docker provider on the test engine, the kubernetes provider on
 * a test cluster, or a provider the caller made (the fake). Every test and
 * benchmark that needs a server starts it here, and signs in through the
 * typed client the same way.
 */

import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { CvmClient } from "../../src/client/index.js";
import type { Provider } from "../../src/core/provider.js";
import type { Role } from "../../src/core/roles.js";
import type { User } from "../../src/core/user.js";
import { dockerHostOf } from "../../src/docker/engine-address.js";
import { dockerClient } from "../../src/docker/engine-client.js";
import { installationTag } from "../../src/docker/labels.js";
import { createProvider } from "../../src/providers/index.js";
import { type RunningServer, type ServerOptions, startServer } from "../../src/server/index.js";
import { installationId } from "../../src/server/installation.js";
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
  /** Any other server option (--proxy-trusted, --access-url, TLS, /metrics...). */
  serverOptions?: Partial<ServerOptions>;
}

export type SignedIn = CvmClient & { user: User };

/** Clients of a server at a URL, signed in the way every test signs in. */
export interface ServerClients {
  /** A client without credentials. */
  anonymous(): CvmClient;
  /** Creates the first site admin, or signs in as it when it exists; a client signed in as it. */
  firstAdmin(): Promise<SignedIn>;
  /** Creates a user (through the admin) and returns a client signed in as it. */
  userWithRole(admin: CvmClient, role: Role, email?: string): Promise<SignedIn>;
  signIn(email: string): Promise<SignedIn>;
}

let counter = 0;

/**
 * Clients of the server at `url()` (a function: a restarted server may answer
 * elsewhere), through `fetch` when given one; the first admin is made with
 * the setup code the server printed.
 */
export function serverClients(
  url: () => string,
  options: { fetch?: typeof globalThis.fetch; setupCode: () => string | undefined },
): ServerClients {
  const anonymous = () => new CvmClient({ baseUrl: url(), fetch: options.fetch });
  const signIn = async (email: string) => {
    const client = anonymous();
    const session = await client.login({ email, password });
    client.token = session.token;
    return Object.assign(client, { user: session.user });
  };
  return {
    anonymous,
    signIn,
    async firstAdmin() {
      const client = anonymous();
      if (!(await client.setupStatus()).needsFirstAdmin) return signIn("admin@example.com");
      const session = await client.createFirstAdmin({
        email: "admin@example.com",
        password,
        // The code the server printed in its log, as the person installing it would read it there.
        setupCode: options.setupCode() ?? "",
      });
      client.token = session.token;
      return Object.assign(client, { user: session.user });
    },
    async userWithRole(admin, role, email = `user${++counter}-${role}@example.com`) {
      await admin.createUser({ email, password, role });
      return signIn(email);
    },
  };
}

export interface TestServer extends ServerClients {
  server: RunningServer;
  url: string;
  dataDir: string;
  /** Stops the server and starts it again on the same port, data dir and store, as a restart would. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/**
 * What a server leaves mounted under its data dir on purpose (LXCFS, which
 * CVMs keep across a restart) or for a while (a disk held by a delete the
 * test did not wait for) is let go first, or the removal fails with EBUSY
 * and leaves it behind.
 */
export function removeDataDir(dataDir: string): void {
  const mounts = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((path) => path?.startsWith(`${dataDir}/`))
    .reverse();
  for (const path of mounts) execFileSync("umount", ["-l", path]);
  rmSync(dataDir, { recursive: true, force: true });
}

/**
 * Each fresh data dir is an installation with a bridge network of its own on
 * the test engine; left behind, a few dozen of them use up the engine's
 * address pools and every later network (and build) fails.
 */
export async function removeInstallationNetwork(installationId: string): Promise<void> {
  const engine = dockerClient(dockerHostOf(testDockerHost));
  await engine
    .getNetwork(`cvm-standard-${installationTag(installationId)}`)
    .remove()
    .catch(() => undefined);
}

export async function startTestServer(options: TestServerOptions | StoreKind = {}): Promise<TestServer> {
  const opts = typeof options === "string" ? { store: options } : options;
  const ownDataDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "cvm-test-server-"));
  if (ownDataDir && opts.cvms) chmodSync(dataDir, 0o755);
  let database: FreshDatabase | undefined;
  const cleanUp = async () => {
    await database?.drop();
    if (ownDataDir) removeDataDir(dataDir);
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
      ...opts.serverOptions,
    });
  let server: RunningServer;
  try {
    if (opts.store === "postgres") database = await freshPostgresUrl();
    server = await start("127.0.0.1:0");
  } catch (error) {
    await cleanUp();
    throw error;
  }
  const test: TestServer = {
    server,
    url: server.url,
    dataDir,
    ...serverClients(() => server.url, { setupCode: () => server.setupCode }),
    async restart() {
      await server.close();
      // This process's clients keep connections to the old server alive; a turn of the event
      // loop that polls for I/O lets them see those connections closed before they ask the new one.
      await sleep(10);
      server = await start(new URL(server.url).host);
      test.server = server;
    },
    async close() {
      const installation = ownDataDir ? await installationId(server.store).catch(() => undefined) : undefined;
      await server.close();
      await cleanUp();
      if (installation) await removeInstallationNetwork(installation);
    },
  };
  return test;
}

/**
 * The real docker provider on the test engine, beside a server's own and of
 * its installation (so it sees that server's workloads); the caller closes it
 * (which removes its scratch directory).
 */
export async function openProvider(server: TestServer): Promise<Provider> {
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-test-provider-"));
  const provider = await createProvider({
    kind: "docker",
    dataDir,
    logger: pino({ level: "silent" }),
    dockerHost: testDockerHost,
    installationId: await installationId(server.server.store),
  });
  const close = provider.close.bind(provider);
  provider.close = async () => {
    await close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return provider;
}
