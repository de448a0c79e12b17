/**
 * Starts the services the tests use (host dockerd, registry, PostgreSQL) and
 * leaves them running, for development: later `npm test` runs reuse them.
 */
import { mkdirSync } from "node:fs";
import { ensureHostDocker, ensurePostgres, ensureRegistry } from "../test/harness/services.js";

mkdirSync("/var/log/cvm-dev-services", { recursive: true });
for (const f of [ensureHostDocker, ensureRegistry, ensurePostgres]) {
  const s = await f("/var/log/cvm-dev-services");
  console.log(f.name, s ? "started" : "already running");
}
