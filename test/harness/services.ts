/**
 * The real services the tests need, started for real: the host's Docker
 * engine, PostgreSQL and an OCI registry (Debian's docker-registry). Each is
 * reused when already answering and otherwise started here and stopped by
 * `stop()`. State that is costly to rebuild (the registry's blobs, built
 * images) lives in the machine cache outside the clone.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { stopProcess } from "./processes.js";

const run = promisify(execFile);

/** Where cached artifacts live, shared by every clone and CI run on this machine. */
export const machineCache = process.env.CVM_CACHE_DIR ?? "/var/cache/cvm";

export const hostDockerSocket = "/var/run/docker.sock";
export const registryAddress = process.env.CVM_TEST_REGISTRY ?? "127.0.0.1:5000";
/** The registry's blobs, kept on the machine so pushed images survive across runs. */
export const registryStorage = join(machineCache, "registry");
const postgresPort = Number(process.env.CVM_TEST_PG_PORT ?? 55432);

export interface Started {
  name: string;
  stop(): Promise<void>;
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`${what} did not become ready within ${timeoutMs / 1000}s`);
}

function detached(command: string, args: string[], logFile: string): ChildProcess {
  const out = openSync(logFile, "a");
  const child = spawn(command, args, { detached: true, stdio: ["ignore", out, out] });
  child.unref();
  return child;
}

async function dockerAnswers(socket: string): Promise<boolean> {
  const { stdout } = await run("docker", ["-H", `unix://${socket}`, "version", "--format", "{{.Server.Version}}"]);
  return stdout.trim().length > 0;
}

/** The host's own engine, as `.ci/run` and the quickstart leave it: plain dockerd on the default socket. */
export async function ensureHostDocker(logDir: string): Promise<Started | undefined> {
  if (await dockerAnswers(hostDockerSocket).catch(() => false)) {
    await sweepStaleTestNetworks();
    return undefined;
  }
  const child = detached("dockerd", ["--host", `unix://${hostDockerSocket}`], join(logDir, "dockerd.log"));
  await waitFor("dockerd", () => dockerAnswers(hostDockerSocket), 60_000);
  await sweepStaleTestNetworks();
  return { name: "dockerd", stop: () => stopProcess({ name: "dockerd", child }, 15_000) };
}

/** Older than any test run: a network this old with nothing on it was left by a run that died. */
const staleNetworkMs = 60 * 60_000;

/**
 * Each test server is an installation with a bridge network of its own
 * (`cvm-standard-<tag>`), removed when the server closes; a run killed
 * before that leaves it, and about thirty of them use up the engine's
 * default address pools, after which every standard environment fails to
 * build. Removes those that no container, running or stopped, is on and
 * that are older than any run.
 */
async function sweepStaleTestNetworks(): Promise<void> {
  const docker = ["-H", `unix://${hostDockerSocket}`];
  const { stdout } = await run("docker", [...docker, "network", "ls", "--filter", "name=cvm-standard-", "-q"]);
  const ids = stdout.split("\n").filter(Boolean);
  if (ids.length === 0) return;
  const inspected = await run("docker", [
    ...docker,
    "network",
    "inspect",
    "--format",
    "{{.ID}} {{len .Containers}} {{.Created.Unix}}",
    ...ids,
  ]).catch(() => ({ stdout: "" }));
  const stale = inspected.stdout
    .split("\n")
    .map((line) => line.trim().split(" "))
    .filter(
      ([id, containers, created]) => id && containers === "0" && Date.now() - Number(created) * 1000 > staleNetworkMs,
    )
    .map(([id]) => id);
  for (const id of stale) {
    // A stopped container still needs its network to start again (a quickstart's stopped environment).
    const users = await run("docker", [...docker, "ps", "-aq", "--filter", `network=${id}`]).catch(() => undefined);
    if (users?.stdout.trim() !== "") continue;
    await run("docker", [...docker, "network", "rm", id]).catch(() => undefined);
  }
}

/** A registry on loopback, its blobs cached on the machine so pushed images survive across runs. */
export async function ensureRegistry(logDir: string): Promise<Started | undefined> {
  const answers = async () => (await fetch(`http://${registryAddress}/v2/`)).ok;
  if (await answers().catch(() => false)) return undefined;
  const storage = registryStorage;
  mkdirSync(storage, { recursive: true });
  const config = join(logDir, "registry.yml");
  writeFileSync(
    config,
    [
      "version: 0.1",
      "log: { level: warn }",
      `storage: { filesystem: { rootdirectory: ${storage} }, delete: { enabled: true } }`,
      `http: { addr: ${registryAddress} }`,
      "",
    ].join("\n"),
  );
  const child = detached("docker-registry", ["serve", config], join(logDir, "registry.log"));
  await waitFor("docker-registry", answers, 30_000);
  return { name: "registry", stop: () => stopProcess({ name: "registry", child }, 15_000) };
}

function postgresBin(): string {
  for (const version of ["17", "16", "15"]) {
    const dir = `/usr/lib/postgresql/${version}/bin`;
    if (existsSync(join(dir, "initdb"))) return dir;
  }
  throw new Error("PostgreSQL server binaries not found: run scripts/provision.sh (Debian's postgresql)");
}

export const postgresUrl = `postgres://postgres@127.0.0.1:${postgresPort}/postgres`;

/** A throwaway PostgreSQL cluster (trust auth on loopback), run as the postgres user. */
export async function ensurePostgres(logDir: string): Promise<Started | undefined> {
  const answers = async () => {
    await run("psql", [postgresUrl, "-Atc", "select 1"]);
    return true;
  };
  if (await answers().catch(() => false)) return undefined;
  const bin = postgresBin();
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-pg-"));
  await run("chown", ["postgres:postgres", dataDir]);
  await run("runuser", ["-u", "postgres", "--", join(bin, "initdb"), "-D", dataDir, "-A", "trust", "-U", "postgres"]);
  const child = detached(
    "runuser",
    [
      "-u",
      "postgres",
      "--",
      join(bin, "postgres"),
      "-D",
      dataDir,
      "-p",
      String(postgresPort),
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      `unix_socket_directories=${dataDir}`,
      "-c",
      "fsync=off",
      "-c",
      "max_connections=300",
    ],
    join(logDir, "postgres.log"),
  );
  await waitFor("postgres", answers, 30_000);
  return {
    name: "postgres",
    stop: async () => {
      await stopProcess({ name: "postgres", child }, 15_000);
      await run("rm", ["-rf", dataDir]);
    },
  };
}
