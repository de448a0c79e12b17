/**
 * The server under load, in its own process so the load generator does not
 * share its event loop: SQLite in a temporary directory, 1,000 environments
 * written straight into the store (100 owners with 10 each), and a session
 * for one member and for the admin. Prints one JSON line with what the
 * benchmark needs (tokens, an environment, the cursor of a deep page), then
 * serves until killed.
 */

import type { EnvironmentState } from "../../src/core/environment.js";
import { Accounts, hashPassword } from "../../src/server/accounts.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { startTestServer } from "../../test/harness/server.js";

const owners = 100;
const perOwner = 10;
const lifecycle: EnvironmentState[] = ["queued", "pulling", "creating", "starting", "running", "stopping", "stopped"];

const served = await startTestServer({ logLevel: "warn", skipReconcile: true });
const { server } = served;
const { store } = server;
const accounts = new Accounts(store);
const passwordHash = await hashPassword("bench password");
const admin = await store.users.createFirst({
  email: "admin@bench.test",
  name: "admin",
  role: "site-admin",
  passwordHash,
});
if (!admin) throw new Error("the bench store was not empty");
let member = admin;
const ids: string[] = [];
const at = new Date().toISOString();
for (let o = 0; o < owners; o++) {
  const owner = await store.users.create({
    email: `user${o}@bench.test`,
    name: `user${o}`,
    role: "member",
    passwordHash,
  });
  if (o === 0) member = owner;
  for (let e = 0; e < perOwner; e++) {
    const environment = fixtures.environment({
      owner,
      name: `env-${e}`,
      image: "registry.example:5000/team/dev:latest",
      cvm: e % 2 === 0,
      cpu: 2,
      memoryGiB: 4,
      diskGiB: 20,
      state: "stopped",
      timeline: lifecycle.map((state) => ({ state, at })),
      createdAt: at,
    });
    ids.push((await store.environments.create(environment)).id);
  }
}
const memberToken = (await accounts.issue(member.id, "session", "bench")).secret;
const adminToken = (await accounts.issue(admin.id, "session", "bench")).secret;
const memberEnvironment = (await store.environments.list({ ownerId: member.id }))[0].id;
// The cursor that asks for the 10th page of 100 of everyone's: a deep page costs what the first does.
let deepCursor: string | undefined;
for (let page = 1; page < 10; page++) {
  deepCursor = (await store.environments.page({}, { limit: 100, cursor: deepCursor })).nextCursor;
}
process.stdout.write(
  `${JSON.stringify({ url: server.url, memberToken, adminToken, memberEnvironment, deepCursor, total: ids.length })}\n`,
);
process.on("SIGTERM", () => {
  void served.close().finally(() => process.exit(0));
});
