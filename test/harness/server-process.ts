/**
 * A real `cvm server` process (bin/cvm server, the compiled dist/), for what only a process
 * shows: killed with SIGKILL in the middle of its work and started again on
 * the same data dir and port, as an operator's machine would after a crash.
 * The in-process harness (server.ts) cannot do that: its builds live in the
 * test's own process.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { compiledCvm } from "./cli.js";
import { freePort } from "./ports.js";
import {
  removeDataDir,
  removeInstallationNetwork,
  type ServerClients,
  serverClients,
  testDockerHost,
} from "./server.js";

export interface ServerProcess extends ServerClients {
  url: string;
  dataDir: string;
  /** The server's log so far (JSON lines). */
  log(): string;
  /** The installation id the server stored. */
  installationId(): string;
  /** SIGKILL: nothing of the server runs its shutdown; waits until the process is gone. */
  kill(): Promise<void>;
  /** Starts the server again on the same data dir and port. */
  start(): Promise<void>;
  /** Stops it (SIGTERM) if it runs, and removes the data dir and the log. */
  close(): Promise<void>;
}

/**
 * fetch, asked once more when the connection was reset before an answer: a
 * kept-alive connection to the killed server can still be handed out for the
 * first request to the new one.
 */
const fetchAcrossKills: typeof fetch = async (input, init) => {
  try {
    return await fetch(input, init);
  } catch (error) {
    const code = ((error as Error).cause as { code?: string } | undefined)?.code;
    if (code !== "ECONNRESET" && code !== "UND_ERR_SOCKET") throw error;
    return fetch(input, init);
  }
};

async function untilHealthy(url: string, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`cvm server exited while starting:\n${readFileSync(logFile, "utf8").slice(-4000)}`);
    }
    // A server whose event loop is stuck accepts the connection and never answers: each try gives up.
    const answer = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    if (answer?.ok) return;
    await sleep(100);
  }
  throw new Error(`cvm server did not answer at ${url} within 60 s:\n${readFileSync(logFile, "utf8").slice(-4000)}`);
}

export async function startServerProcess(options: { cvms?: boolean } = {}): Promise<ServerProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-server-process-"));
  // A CVM's remapped root must reach its volumes under the data dir.
  if (options.cvms) chmodSync(dataDir, 0o755);
  const logFile = `${dataDir}.log`;
  const url = `http://127.0.0.1:${await freePort()}`;
  // The first admin's one-time code, given rather than read from the log.
  const setupCode = randomBytes(12).toString("hex");
  const cvmBin = await compiledCvm();
  let child: ChildProcess | undefined;
  const start = async () => {
    const log = openSync(logFile, "a");
    try {
      child = spawn(
        cvmBin,
        [
          "server",
          "--listen",
          new URL(url).host,
          "--data-dir",
          dataDir,
          "--log-level",
          "info",
          ...(testDockerHost ? ["--docker-host", testDockerHost] : []),
        ],
        { stdio: ["ignore", log, log], env: { ...process.env, CVM_SETUP_CODE: setupCode } },
      );
    } finally {
      closeSync(log);
    }
    await untilHealthy(url, child, logFile);
  };
  const exited = (process: ChildProcess) =>
    process.exitCode !== null || process.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => process.once("exit", () => resolve()));
  const storedInstallationId = () => {
    const db = new Database(join(dataDir, "cvm.db"), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare("SELECT value FROM settings WHERE key = 'installation'").get() as { value: string }).value;
    } finally {
      db.close();
    }
  };
  await start();
  return {
    url,
    dataDir,
    ...serverClients(() => url, { fetch: fetchAcrossKills, setupCode: () => setupCode }),
    log: () => readFileSync(logFile, "utf8"),
    installationId: storedInstallationId,
    async kill() {
      if (!child) return;
      const running = child;
      running.kill("SIGKILL");
      await exited(running);
      child = undefined;
    },
    start,
    async close() {
      if (child) {
        const running = child;
        running.kill("SIGTERM");
        await Promise.race([exited(running), sleep(60_000)]);
        if (running.exitCode === null && running.signalCode === null) {
          running.kill("SIGKILL");
          await Promise.race([exited(running), sleep(5000)]);
        }
      }
      let installation: string | undefined;
      try {
        installation = storedInstallationId();
      } catch {
        // The server never got as far as storing one.
      }
      if (installation) await removeInstallationNetwork(installation);
      removeDataDir(dataDir);
      rmSync(logFile, { force: true });
    },
  };
}
