/**
 * A real cvm server for API tests, over real HTTP, on either store: SQLite in
 * a temporary directory, or a fresh PostgreSQL database of its own.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { CvmClient } from "../../src/client/index.js";
import type { Provider } from "../../src/core/provider.js";
import type { Role } from "../../src/core/roles.js";
import type { User } from "../../src/core/user.js";
import { createProvider } from "../../src/providers/index.js";
import { type RunningServer, startServer } from "../../src/server/index.js";
import { freshPostgresUrl } from "../../src/store/testing.js";

export const storeKinds = ["sqlite", "postgres"] as const;
export type StoreKind = (typeof storeKinds)[number];

export interface TestServer {
  server: RunningServer;
  url: string;
  /** A client without credentials. */
  anonymous(): CvmClient;
  /** Creates the first admin and returns a client signed in as it. */
  firstAdmin(): Promise<CvmClient & { user: User }>;
  /** Creates a user (through the admin) and returns a client signed in as it. */
  userWithRole(admin: CvmClient, role: Role, email?: string): Promise<CvmClient & { user: User }>;
  /** Stops the server and starts it again on the same port and store, as a restart would. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** The real docker provider on the test engine; the caller closes it (which removes its scratch directory). */
export async function openProvider(): Promise<Provider> {
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-api-provider-"));
  const provider = await createProvider({
    kind: "docker",
    dataDir,
    logger: pino({ level: "silent" }),
    dockerHost: process.env.CVM_TEST_HOST_DOCKER ? `unix://${process.env.CVM_TEST_HOST_DOCKER}` : undefined,
  });
  const close = provider.close.bind(provider);
  provider.close = async () => {
    await close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return provider;
}

export const password = "correct horse battery";
let counter = 0;

export async function startTestServer(kind: StoreKind): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-api-test-"));
  const database = kind === "postgres" ? await freshPostgresUrl() : undefined;
  const start = (listen: string) =>
    startServer({
      listen,
      dataDir,
      postgresUrl: database?.url,
      provider: "docker",
      dockerHost: process.env.CVM_TEST_HOST_DOCKER ? `unix://${process.env.CVM_TEST_HOST_DOCKER}` : undefined,
      logger: pino({ level: process.env.CVM_TEST_LOG_LEVEL ?? "error" }, pino.destination(2)),
      webRoot: join(dataDir, "no-dashboard"),
    });
  let server = await start("127.0.0.1:0");
  const anonymous = () => new CvmClient({ baseUrl: server.url });
  const signedIn = async (email: string) => {
    const client = anonymous();
    const session = await client.login({ email, password });
    client.token = session.token;
    return Object.assign(client, { user: session.user });
  };
  const test: TestServer = {
    server,
    url: server.url,
    anonymous,
    async firstAdmin() {
      const client = anonymous();
      const session = await client.createFirstAdmin({ email: "admin@example.com", password });
      client.token = session.token;
      return Object.assign(client, { user: session.user });
    },
    async userWithRole(admin, role, email = `user${++counter}-${role}@example.com`) {
      await admin.createUser({ email, password, role });
      return signedIn(email);
    },
    async restart() {
      await server.close();
      server = await start(new URL(server.url).host);
      test.server = server;
    },
    async close() {
      await server.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return test;
}
