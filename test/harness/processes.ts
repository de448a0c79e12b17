/**
 * The harnesses' child processes: each started with its log in a file,
 * stopped with SIGTERM then SIGKILL, and waited on with a probe that fails
 * at once (with the log's tail) when a process it depends on has died.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface Proc {
  name: string;
  child: ChildProcess;
}

export function startProcess(
  name: string,
  command: string,
  args: string[],
  logDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Proc {
  const out = openSync(join(logDir, `${name}.log`), "a");
  const child = spawn(command, args, { stdio: ["ignore", out, out], env });
  return { name, child };
}

/** Whether a process (say, a lock's holder) still exists. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopProcess({ child }: Proc, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await Promise.race([exited, sleep(graceMs)]);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill("SIGKILL");
    await Promise.race([exited, sleep(5000)]);
  }
}

export async function waitUntil(
  what: string,
  procs: Proc[],
  probe: () => Promise<boolean>,
  timeoutMs: number,
  logDir: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const dead = procs.find((p) => p.child.exitCode !== null);
    if (dead) {
      const tail = readFileSync(join(logDir, `${dead.name}.log`), "utf8").slice(-3000);
      throw new Error(`${dead.name} exited (${dead.child.exitCode}) while waiting for ${what}:\n${tail}`);
    }
    if (await probe().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`${what} was not ready within ${timeoutMs / 1000} s (logs in ${logDir})`);
}
