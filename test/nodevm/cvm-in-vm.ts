/**
 * Runs inside the node VM, bundled by payload.ts: cvm's own supervisor code
 * (createCvmSupervisor, unchanged) builds and removes a CVM on a cgroup v2
 * node, as the docker provider would on one.
 *
 *   node cvm-in-vm.mjs build  --id ID --engine-data DEV    (image.json beside it names the image)
 *   node cvm-in-vm.mjs remove --id ID
 *
 * The image arrives already in cvm's engine: DEV is the engine's data root,
 * filled on the host (payload.ts, engineSeed), since importing it under
 * emulation takes many minutes; the build finds it there ("already in cvm's
 * engine"), as the VM has no network.
 * The last line printed is `CVM-NODEVM-RESULT <json>`, for the host's test.
 */

import { execFile } from "node:child_process";
import { copyFile, mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { pino } from "pino";
import { containerName } from "../../src/supervisor/cvm-container.js";
import { enginePaths } from "../../src/supervisor/engine.js";
import { cvmBuildContext, cvmEnvironment, startSupervisor } from "../harness/cvm.js";

const run = promisify(execFile);

/** Short: the engine's exec root holds unix sockets (108-byte paths). */
export const vmDataDir = "/var/lib/cvm-nodevm";
export const resultMarker = "CVM-NODEVM-RESULT";

const here = fileURLToPath(new URL(".", import.meta.url));
const logger = pino({ level: "info" }, pino.destination(2));

const seconds = (since: number) => Number(((Date.now() - since) / 1000).toFixed(2));

/** The start gate is compiled on the host (the VM has no gcc) under the name ensureGateBinary looks for. */
async function installGate(): Promise<void> {
  const bin = enginePaths(vmDataDir).bin;
  await mkdir(bin, { recursive: true });
  for (const file of await readdir(join(here, "bin"))) await copyFile(join(here, "bin", file), join(bin, file));
}

async function tail(file: string, lines = 30): Promise<string> {
  return (await readFile(file, "utf8").catch(() => "")).trim().split("\n").slice(-lines).join("\n");
}

async function build(values: Record<string, string | undefined>): Promise<Record<string, unknown>> {
  const started = Date.now();
  const { reference } = JSON.parse(await readFile(join(here, "image.json"), "utf8")) as { reference: string };
  await installGate();
  // The engine's data root arrives with the image already in it (payload.ts, engineSeed).
  const dataRoot = enginePaths(vmDataDir).dataRoot;
  await mkdir(dataRoot, { recursive: true });
  await run("mount", ["-t", "ext4", values["engine-data"] ?? "", dataRoot]);
  const supervisor = await startSupervisor(vmDataDir, { logger, hostDockerHost: undefined, readyTimeoutSeconds: 420 });
  const env = cvmEnvironment(reference, { id: values.id ?? `nv${Date.now().toString(36)}`, name: "nodevm", cpu: 2 });
  // The build log goes to the console as it comes, for the host's test to show.
  const context = cvmBuildContext({ onLine: (text) => console.log(`build log | ${text}`) });
  try {
    const observation = await supervisor.build(env, context);
    return {
      ok: true,
      id: env.id,
      container: containerName(env.id),
      socket: enginePaths(vmDataDir).socket,
      observation,
      seconds: seconds(started),
    };
  } catch (error) {
    const e = error as { message?: string; detail?: string; stack?: string };
    return {
      ok: false,
      id: env.id,
      error: e.message,
      detail: e.detail,
      stack: e.stack,
      buildLog: context.lines,
      engineLog: await tail(enginePaths(vmDataDir).log),
    };
  }
}

async function remove(values: Record<string, string | undefined>): Promise<Record<string, unknown>> {
  const id = values.id ?? "";
  const socket = enginePaths(vmDataDir).socket;
  const { stdout } = await run("docker", [
    "-H",
    `unix://${socket}`,
    "inspect",
    "--format",
    "{{.Id}}",
    containerName(id),
  ]);
  const containerId = stdout.trim();
  const supervisor = await startSupervisor(vmDataDir, { logger, hostDockerHost: undefined });
  const started = Date.now();
  await supervisor.remove(cvmEnvironment("", { id }), { keepHome: false });
  const cgroupDir = join("/sys/fs/cgroup/cvm", containerId);
  const left = await stat(cgroupDir).then(
    () => [cgroupDir],
    () => [],
  );
  return { ok: true, containerId, seconds: seconds(started), cgroupsLeft: left };
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    "engine-data": { type: "string" },
    id: { type: "string" },
  },
});
const modes: Record<string, (v: typeof values) => Promise<Record<string, unknown>>> = { build, remove };
const mode = modes[positionals[0] ?? ""];
if (!mode) throw new Error(`usage: cvm-in-vm.mjs build|remove ... (got ${positionals.join(" ")})`);
const result = await mode(values).catch((error: Error) => ({ ok: false, error: error.message, stack: error.stack }));
console.log(`${resultMarker} ${JSON.stringify(result)}`);
process.exit(result.ok ? 0 : 1);
