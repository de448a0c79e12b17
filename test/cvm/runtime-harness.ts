/**
 * What the runtime tests share: a supervisor on a data dir of their own (so
 * its engine, bridge and volumes are theirs), environments with a unique id
 * prefix, and a BuildContext that records what the server would be told.
 * The context is a test double for the server, not a stand-in for the runtime.
 */

import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import type { Environment, EnvironmentState } from "../../src/core/environment.js";
import type { BuildContext, ExecOptions } from "../../src/core/provider.js";
import { defaultSettings, type InfrastructureSettings } from "../../src/core/settings.js";
import { type CvmSupervisor, createCvmSupervisor } from "../../src/supervisor/index.js";

export const runId = `rt${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;

/** Short: the engine's exec root holds unix sockets, whose paths have a 108-byte limit. */
export const dataDir = `/tmp/cvm-${runId}`;

export function images(): { systemdDocker: string; plain: string; danglingInit: string } | undefined {
  const systemdDocker = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
  const plain = process.env.CVM_TEST_IMAGE_PLAIN;
  const danglingInit = process.env.CVM_TEST_IMAGE_DANGLING_INIT;
  if (!systemdDocker || !plain || !danglingInit) return undefined;
  return { systemdDocker, plain, danglingInit };
}

export const missingImages = images()
  ? false
  : "test images are not named (CVM_TEST_IMAGE_*): run through `npm test`, which builds them";

let counter = 0;

export function environment(image: string, overrides: Partial<Environment> = {}): Environment {
  counter += 1;
  const now = new Date().toISOString();
  return {
    id: `${runId}-${counter}`,
    name: `dev${counter}`,
    image,
    cvm: true,
    cpu: 1,
    memoryGiB: 1,
    diskGiB: 10,
    ownerId: "owner",
    ownerEmail: "owner@example.com",
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

export interface RecordingContext extends BuildContext {
  lines: string[];
  states: EnvironmentState[];
}

export function recordingContext(settings: Partial<InfrastructureSettings> = {}): RecordingContext {
  const lines: string[] = [];
  const states: EnvironmentState[] = [];
  return {
    settings: { ...defaultSettings, cvmEnabled: true, ...settings },
    lines,
    states,
    async log(text) {
      lines.push(text);
      if (process.env.CVM_TEST_VERBOSE) console.log(`  | ${text}`);
    },
    async enter(state) {
      states.push(state);
    },
    signal: new AbortController().signal,
  };
}

export async function startSupervisor(): Promise<CvmSupervisor> {
  return createCvmSupervisor({
    dataDir,
    logger: pino({ level: process.env.CVM_TEST_VERBOSE ? "info" : "warn" }),
    hostDockerHost: process.env.CVM_TEST_HOST_DOCKER ?? "unix:///var/run/docker.sock",
  });
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(
  supervisor: CvmSupervisor,
  env: Environment,
  command: string[],
  options: Partial<ExecOptions> = {},
): Promise<Ran> {
  const session = await supervisor.exec(env, { command, tty: false, ...options });
  let stdout = "";
  let stderr = "";
  session.onOutput((stream, data) => {
    if (stream === "stdout") stdout += Buffer.from(data).toString();
    else stderr += Buffer.from(data).toString();
  });
  // A terminal's input stays open, as a person's would; closing it can end the session before its output is read.
  if (!options.tty) session.end();
  const code = await session.exited;
  return { code, stdout, stderr };
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
