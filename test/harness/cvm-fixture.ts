/**
 * A real CVM for tests and benchmarks: cvm's own supervisor (and its
 * user-namespace-remapped engine) with a data dir of the caller's, an
 * Environment record as the server would hand it over, and commands run
 * inside through the supervisor's own exec.
 */

import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import pino from "pino";
import type { Environment } from "../../src/core/environment.js";
import type { BuildContext, Observation } from "../../src/core/provider.js";
import { defaultSettings, type InfrastructureSettings } from "../../src/core/settings.js";
import { containerName } from "../../src/supervisor/cvm-container.js";
import { enginePaths } from "../../src/supervisor/engine.js";
import { type CvmSupervisor, createCvmSupervisor } from "../../src/supervisor/index.js";
import { machineCache } from "./services.js";

const run = promisify(execFile);

/**
 * A data dir per user of the fixture (the isolation tests, the benchmark):
 * each gets its own engine, and the images it pulled stay for the next run.
 */
export function fixtureDataDir(purpose: string): string {
  return join(process.env.CVM_TEST_ENGINES_DIR ?? join(machineCache, "engines"), purpose);
}

export async function startSupervisor(dataDir: string): Promise<CvmSupervisor> {
  return createCvmSupervisor({
    dataDir,
    logger: pino({ level: process.env.CVM_TEST_LOG_LEVEL ?? "warn" }),
    hostDockerHost: `unix://${process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock"}`,
  });
}

let counter = 0;

/** An environment record as the server would pass it to a provider. */
export function cvmEnvironment(prefix: string, image: string, overrides: Partial<Environment> = {}): Environment {
  counter += 1;
  const now = new Date().toISOString();
  const id = `${prefix}-${process.pid}-${counter}-${Date.now().toString(36)}`;
  return {
    id,
    name: `${prefix}-${counter}`.slice(0, 63),
    image,
    cvm: true,
    cpu: 1,
    memoryGiB: 1,
    diskGiB: 10,
    ownerId: "test-owner",
    ownerEmail: "test@cvm.invalid",
    state: "queued",
    runtime: "userns",
    systemd: "unknown",
    failedUnits: [],
    docker: "unknown",
    timeline: [],
    createdAt: now,
    updatedAt: now,
    version: 1,
    ...overrides,
  };
}

/**
 * A build context with CVMs enabled on the built-in runtime; the build log is
 * kept in `lines`, each line with the milliseconds since the build began.
 */
export function buildContext(
  signal = new AbortController().signal,
  settings: Partial<InfrastructureSettings> = {},
): BuildContext & { lines: string[] } {
  const lines: string[] = [];
  const begun = performance.now();
  const stamp = (text: string) =>
    lines.push(`+${String(Math.round(performance.now() - begun)).padStart(5)} ms  ${text}`);
  return {
    settings: { ...defaultSettings, cvmEnabled: true, runtime: "userns", ...settings },
    lines,
    async log(text) {
      stamp(text);
    },
    async enter(state) {
      stamp(`[state] ${state}`);
    },
    signal,
  };
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command inside the environment (as root, as the supervisor's exec does) and collects its output. */
export async function execIn(supervisor: CvmSupervisor, environment: Environment, command: string[]): Promise<Ran> {
  const session = await supervisor.exec(environment, { command, tty: false });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  session.onOutput((stream, data) => (stream === "stdout" ? out : err).push(Buffer.from(data)));
  session.end();
  const code = await session.exited;
  return { code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}

/** Runs a shell script inside the environment as root. */
export function shIn(supervisor: CvmSupervisor, environment: Environment, script: string): Promise<Ran> {
  return execIn(supervisor, environment, ["/bin/sh", "-c", script]);
}

export async function buildCvm(
  supervisor: CvmSupervisor,
  environment: Environment,
  settings: Partial<InfrastructureSettings> = {},
): Promise<{ observation: Observation; log: string[] }> {
  const context = buildContext(undefined, settings);
  try {
    return { observation: await supervisor.build(environment, context), log: context.lines };
  } catch (error) {
    const detail = (error as { detail?: string }).detail;
    const why = `${(error as Error).message}${detail ? `\n${detail}` : ""}`;
    throw new Error(`build of ${environment.id} failed: ${why}\n${context.lines.join("\n")}`, { cause: error });
  }
}

/**
 * Copies an image of the node's engine into a CVM's inner engine (`docker save
 * | docker exec -i CVM docker load`): a CVM cannot reach the node's registry
 * on loopback, by design.
 */
export async function loadIntoCvm(dataDir: string, environment: Environment, image: string): Promise<void> {
  const host = ["-H", `unix://${process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock"}`];
  // The test images are built in the node's engine; elsewhere they come from the registry.
  await run("docker", [...host, "image", "inspect", image]).catch(() => run("docker", [...host, "pull", "-q", image]));
  const save = spawn("docker", [...host, "save", image], { stdio: ["ignore", "pipe", "pipe"] });
  const cvm = ["-H", `unix://${enginePaths(dataDir).socket}`, "exec", "-i", containerName(environment.id)];
  const load = spawn("docker", [...cvm, "docker", "load", "-q"], { stdio: ["pipe", "pipe", "pipe"] });
  save.stdout.pipe(load.stdin);
  const errors: string[] = [];
  for (const child of [save, load]) child.stderr.on("data", (chunk: Buffer) => errors.push(chunk.toString()));
  const exited = (child: ReturnType<typeof spawn>) =>
    new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  const [saved, loaded] = await Promise.all([exited(save), exited(load)]);
  if (saved !== 0 || loaded !== 0) throw new Error(`could not load ${image} into the CVM: ${errors.join("")}`);
}
