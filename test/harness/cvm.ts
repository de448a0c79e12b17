/**
 * A real CVM for tests and benchmarks (test/cvm, test/docker, bench/cvm, and
 * the node VM's payload): cvm's own supervisor and its user-namespace-remapped
 * engine on a data dir of the caller's, an Environment record as the server
 * would hand it over, a build context that records what the server would be
 * told, and commands run inside through the supervisor's own exec.
 */

import { execFile, spawn } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import type { Environment } from "../../src/core/environment.js";
import type { ExecOptions, Observation } from "../../src/core/provider.js";
import { containerName } from "../../src/supervisor/cvm-container.js";
import { enginePaths } from "../../src/supervisor/engine.js";
import { type CvmSupervisor, type CvmSupervisorOptions, createCvmSupervisor } from "../../src/supervisor/index.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { hostDockerSocket, machineCache } from "./services.js";

/** Unique to this test process and run: ids and names of what it makes. */
export const runId = `rt${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;

/**
 * A data dir of this process's own, so its engine, bridge and volumes are its
 * own (removed after). Short: the engine's exec root holds unix sockets, whose
 * paths have a 108-byte limit.
 */
export const scratchDataDir = `/tmp/cvm-${runId}`;

/**
 * A data dir per purpose that outlives the run (the isolation tests, the
 * benchmark): each gets its own engine, and the images it pulled stay for the next run.
 */
export function fixtureDataDir(purpose: string): string {
  return join(process.env.CVM_TEST_ENGINES_DIR ?? join(machineCache, "engines"), purpose);
}

/** The test images `npm test` builds (images/build.ts), or undefined outside it. */
export function cvmImages(): { systemdDocker: string; plain: string; danglingInit: string } | undefined {
  const systemdDocker = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
  const plain = process.env.CVM_TEST_IMAGE_PLAIN;
  const danglingInit = process.env.CVM_TEST_IMAGE_DANGLING_INIT;
  if (!systemdDocker || !plain || !danglingInit) return undefined;
  return { systemdDocker, plain, danglingInit };
}

export const missingImages = cvmImages()
  ? false
  : "test images are not named (CVM_TEST_IMAGE_*): run through `npm test`, which builds them";

/** The supervisor on `dataDir`, copying local images from the host's engine as the docker provider's does. */
export function startSupervisor(
  dataDir: string,
  options: Partial<Omit<CvmSupervisorOptions, "dataDir">> = {},
): Promise<CvmSupervisor> {
  return createCvmSupervisor({
    dataDir,
    logger: pino({ level: process.env.CVM_TEST_LOG_LEVEL ?? (process.env.CVM_TEST_VERBOSE ? "info" : "warn") }),
    hostDockerHost: `unix://${process.env.CVM_TEST_HOST_DOCKER ?? hostDockerSocket}`,
    ...options,
  });
}

let counter = 0;

/** A CVM's record as the server would pass it to a provider, with an id unique to this run. */
export function cvmEnvironment(image: string, overrides: Partial<Environment> = {}): Environment {
  counter += 1;
  return fixtures.environment({
    id: `${runId}-${counter}`,
    name: `dev${counter}`,
    image,
    cvm: true,
    diskGiB: 10,
    ...overrides,
  });
}

/** A build context with CVMs enabled; CVM_TEST_VERBOSE echoes the build log. */
export function cvmBuildContext(options: fixtures.RecordingOptions = {}): fixtures.RecordingContext {
  return fixtures.recordingContext({
    settings: fixtures.settings({ cvmEnabled: true }),
    onLine: process.env.CVM_TEST_VERBOSE ? (text) => console.log(`  | ${text}`) : undefined,
    ...options,
  });
}

/** Builds the CVM; a failure names the environment and carries the build log, each line with its time. */
export async function buildCvm(
  supervisor: CvmSupervisor,
  environment: Environment,
  settings: Parameters<typeof fixtures.settings>[0] = {},
): Promise<{ observation: Observation; log: string[] }> {
  const context = cvmBuildContext({
    settings: fixtures.settings({ cvmEnabled: true, runtime: "userns", ...settings }),
  });
  try {
    return { observation: await supervisor.build(environment, context), log: context.timeline };
  } catch (error) {
    const detail = (error as { detail?: string }).detail;
    const why = `${(error as Error).message}${detail ? `\n${detail}` : ""}`;
    throw new Error(`build of ${environment.id} failed: ${why}\n${context.timeline.join("\n")}`, { cause: error });
  }
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command inside the environment (as root, as the supervisor's exec does) and collects its output. */
export async function execIn(
  supervisor: CvmSupervisor,
  environment: Environment,
  command: string[],
  options: Partial<ExecOptions> = {},
): Promise<Ran> {
  const session = await supervisor.exec(environment, { command, tty: false, ...options });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  session.onOutput((stream, data) => (stream === "stdout" ? out : err).push(Buffer.from(data)));
  // A terminal's input stays open, as a person's would; closing it can end the session before its output is read.
  if (!options.tty) session.end();
  const code = await session.exited;
  return { code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}

/** Runs a shell script inside the environment as root. */
export function shIn(supervisor: CvmSupervisor, environment: Environment, script: string): Promise<Ran> {
  return execIn(supervisor, environment, ["/bin/sh", "-c", script]);
}

/** Every trace of a container on the node: cgroup directories, mounts, processes of its cgroup. */
export async function traces(containerId: string): Promise<string[]> {
  const found: string[] = [];
  for (const hierarchy of await readdir("/sys/fs/cgroup")) {
    const dir = join("/sys/fs/cgroup", hierarchy, "cvm", containerId);
    if (
      await stat(dir).then(
        () => true,
        () => false,
      )
    )
      found.push(dir);
  }
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  for (const line of mountinfo.split("\n")) if (line.includes(containerId.slice(0, 12))) found.push(`mount: ${line}`);
  return found;
}

const run = promisify(execFile);

/**
 * Copies an image of the node's engine into a CVM's inner engine (`docker save
 * | docker exec -i CVM docker load`): a CVM cannot reach the node's registry
 * on loopback, by design.
 */
export async function loadIntoCvm(dataDir: string, environment: Environment, image: string): Promise<void> {
  const host = ["-H", `unix://${process.env.CVM_TEST_HOST_DOCKER ?? hostDockerSocket}`];
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
