/**
 * What a failing test prints when the host engine may be stuck: the
 * installation's containers with their states, the daemon's goroutines that
 * have waited for minutes (dockerd writes its stacks on SIGUSR1), and the
 * kernel's last words that are not bridge-port chatter. A CI log then names
 * the wait, not only the timeout. Every step is bounded: a diagnosis must not
 * hang on the engine it diagnoses.
 */

import { execFile } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

const run = promisify(execFile);
const execRoot = "/var/run/docker";

async function output(command: string, args: string[]): Promise<string> {
  return run(command, args, { timeout: 10_000 }).then(
    ({ stdout }) => stdout.trim(),
    (error: Error) => `(${command} failed: ${error.message.split("\n")[0]})`,
  );
}

/** The stacks dockerd wrote since `after` (ms since the epoch), if it has yet. */
async function newestStacks(after: number): Promise<string | undefined> {
  const names = (await readdir(execRoot).catch(() => [])).filter((n) => n.startsWith("goroutine-stacks-")).sort();
  const newest = names.at(-1);
  if (!newest || (await stat(join(execRoot, newest))).mtimeMs < after - 1000) return undefined;
  return readFile(join(execRoot, newest), "utf8");
}

/** A wait on a lock or in the kernel, or anywhere in a removal, a stop, a kill or an exit's handling. */
const stuck =
  /^goroutine \d+ \[(semacquire|sync\.(RW)?Mutex|syscall)|ContainerRm|cleanupContainer|\.Kill\(|ContainerStop|releaseNetwork|ProcessEvent/;

/** The daemon's goroutines that have waited for minutes where a stuck removal would, each cut to its first frames. */
async function longWaits(): Promise<string> {
  const pid = Number((await readFile(join(execRoot, "..", "docker.pid"), "utf8").catch(() => "")).trim());
  if (!pid) return "(no /var/run/docker.pid: the engine is not this machine's default one)";
  const asked = Date.now();
  try {
    process.kill(pid, "SIGUSR1");
  } catch (error) {
    return `(could not ask dockerd ${pid} for its stacks: ${(error as Error).message})`;
  }
  let stacks: string | undefined;
  for (let i = 0; i < 30 && !stacks; i++) {
    await sleep(100);
    stacks = await newestStacks(asked);
  }
  if (!stacks) return "(dockerd wrote no stacks)";
  const waiting = stacks
    .split("\n\n")
    .filter((block) => /^goroutine \d+ \[[^\]]*minutes\]/.test(block) && stuck.test(block))
    .map((block) => block.split("\n").slice(0, 17).join("\n"));
  return waiting.length === 0
    ? "(no goroutine of the daemon has waited for minutes)"
    : `${waiting.length} of the daemon's goroutines have waited for minutes; the first ones:\n${waiting.slice(0, 6).join("\n\n")}`;
}

export async function engineDiagnosis(installationId: string): Promise<string> {
  const containers = await output("docker", [
    "ps",
    "-a",
    "--filter",
    `label=dev.cvm.installation=${installationId}`,
    "--format",
    "{{.ID}} {{.Names}} {{.Status}}",
  ]);
  const kernel = (await output("dmesg", ["-T"]))
    .split("\n")
    .filter((line) => !/entered |left |renamed from|link becomes ready|\(unregistering\)|mounted filesystem/.test(line))
    .slice(-20)
    .join("\n");
  return [
    `the installation's containers on the host engine:\n${containers || "(none)"}`,
    await longWaits(),
    `the kernel's last lines (bridge ports and mounts left out):\n${kernel || "(none)"}`,
  ].join("\n\n");
}
