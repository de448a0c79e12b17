/**
 * The agent a CVM's Pod runs (`cvm supervisor`, never people): it reads the
 * environment from the Pod's variables and files (pod-contract.ts), runs the
 * same supervisor as on one machine, reports every build-log line and state
 * to the server (reporter.ts), marks the Pod ready once the environment is,
 * and stops the environment cleanly when the Pod is deleted. `execInPod`
 * runs a command in the environment, for the provider's exec.
 */

import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import type { Environment, RegistryCredentials } from "../core/environment.js";
import { FrameDecoder } from "../core/exec-frames.js";
import { resolveRuntime } from "../core/isolation-runtime.js";
import type { BuildContext, Observation, SupervisorReport } from "../core/provider.js";
import { defaultSettings, type InfrastructureSettings } from "../core/settings.js";
import { createCvmSupervisor } from "./index.js";
import { decodePodVariables, decodeRegistryAuth, type PodVariables } from "./pod-contract.js";
import { SupervisorReporter } from "./reporter.js";

/** What the agent works from: the Pod's variables, with the environment and the Secret's files read. */
export interface PodEnvironment extends PodVariables {
  environment: Environment;
  settings: InfrastructureSettings;
  credentials?: RegistryCredentials;
}

function readIfPresent(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, "utf8").trim() : undefined;
}

export function podEnvironment(env: NodeJS.ProcessEnv = process.env): PodEnvironment {
  const pod = decodePodVariables(env);
  const now = new Date().toISOString();
  const environment: Environment = {
    ...pod.environment,
    cvm: true,
    cpu: pod.cpuLimitMillis / 1000,
    memoryGiB: pod.memoryLimitMiB / 1024,
    diskGiB: pod.environment.diskGiB,
    ownerId: "",
    state: "queued",
    runtime: resolveRuntime(pod.runtime),
    systemd: "unknown",
    failedUnits: [],
    docker: "unknown",
    timeline: [],
    createdAt: now,
    updatedAt: now,
    version: 1,
  };
  return {
    ...pod,
    environment,
    settings: {
      ...defaultSettings,
      cvmEnabled: true,
      runtime: pod.runtime,
      limits: { ...defaultSettings.limits, pids: pod.pidsLimit },
      fuseDevice: pod.fuseDevice,
      tunDevice: pod.tunDevice,
      lxcfs: pod.lxcfs,
    },
    credentials: decodeRegistryAuth(readIfPresent(pod.registryAuthFile)),
  };
}

function emptyDirectory(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true });
}

function observationReport(observation: Observation): SupervisorReport["observation"] {
  const { runtime, systemd, failedUnits, docker } = observation;
  return { runtime, systemd, failedUnits, docker };
}

/** Builds the environment, reports, and keeps it running until the Pod is deleted. */
export async function runPodAgent(): Promise<void> {
  const logger = pino({ base: { service: "cvm-supervisor" } });
  const pod = podEnvironment();
  const { environment } = pod;
  const reporter = new SupervisorReporter(
    pod.reportUrl,
    // The kubelet renews the projected token: read at each report.
    () => readIfPresent(pod.reportTokenFile),
    (message) => logger.warn({ environmentId: environment.id }, message),
  );
  const log = async (text: string) => {
    logger.info({ environmentId: environment.id }, text);
    reporter.line(text);
  };
  if (pod.discardDockerData) {
    await log("rebuild: emptying the inner Docker's data");
    emptyDirectory(pod.dockerDataDir);
  }
  const supervisor = await createCvmSupervisor({
    dataDir: pod.runtimeDir,
    logger,
    // The claim's subpaths: the supervisor binds them as the environment's /home and /var/lib/docker.
    volumeSources: { home: pod.homeDir, dockerData: pod.dockerDataDir },
    insecureRegistries: pod.insecureRegistries,
  });
  const stopping = new AbortController();
  const onSignal = () => stopping.abort(new Error("the Pod is being deleted"));
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);

  const context: BuildContext = {
    settings: pod.settings,
    credentials: pod.credentials,
    log,
    enter: async (state) => reporter.send({ state }),
    signal: stopping.signal,
  };
  let observation: Observation;
  try {
    observation = await supervisor.build(environment, context);
    if (!observation.running) throw new Error(observation.reason ?? "the environment is not running after its build");
  } catch (error) {
    const reason = stopping.signal.aborted ? String(stopping.signal.reason?.message) : (error as Error).message;
    reporter.send({ state: "failed", reason });
    await reporter.drain();
    await supervisor.close().catch(() => undefined);
    process.exitCode = stopping.signal.aborted ? 0 : 1;
    return;
  }
  writeFileSync(pod.readyFile, `${new Date().toISOString()}\n`);
  reporter.send({ state: "running", observation: observationReport(observation) });

  // While it runs: report what changes (systemd degrading, Docker stopping), from inside the Pod.
  let last = JSON.stringify(observationReport(observation));
  while (!stopping.signal.aborted) {
    await sleep(15_000, undefined, { signal: stopping.signal }).catch(() => undefined);
    if (stopping.signal.aborted) break;
    const now = await supervisor.observe(environment).catch(() => undefined);
    if (!now) continue;
    const report = JSON.stringify(observationReport(now));
    if (report !== last) reporter.send({ observation: observationReport(now) });
    last = report;
    if (!now.running) {
      reporter.send({ state: "failed", reason: now.reason ?? "the environment stopped" });
      break;
    }
  }
  rmSync(pod.readyFile, { force: true });
  await supervisor.stop(environment, pod.stopTimeoutSeconds).catch((error) => logger.warn({ err: error }, "stop"));
  await reporter.drain();
  await supervisor.close().catch(() => undefined);
}

export interface ExecFlags {
  tty?: boolean;
  /** Stdin carries the server's frames (core/exec-frames.ts), not bytes. */
  framed?: boolean;
  cols?: number;
  rows?: number;
  user?: string;
  cwd?: string;
  /** NAME=VALUE, each. */
  env?: string[];
}

/** Runs `command` (the login shell when empty) in the environment this Pod supervises, attached to this process. */
export async function execInPod(command: string[], flags: ExecFlags): Promise<void> {
  const pod = podEnvironment();
  const logger = pino({ level: "warn" });
  const supervisor = await createCvmSupervisor({ dataDir: pod.runtimeDir, logger });
  const session = await supervisor.exec(pod.environment, {
    command,
    tty: flags.tty ?? false,
    cols: flags.cols ?? process.stdout.columns,
    rows: flags.rows ?? process.stdout.rows,
    ...(flags.user ? { user: flags.user } : {}),
    ...(flags.cwd ? { cwd: flags.cwd } : {}),
    env: Object.fromEntries(
      (flags.env ?? []).map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]),
    ),
  });
  session.onOutput((stream, data) => (stream === "stdout" ? process.stdout : process.stderr).write(data));
  if (flags.framed) {
    // The server's frames: input, resizes and end of input, the Pod without a terminal of its own.
    const decoder = new FrameDecoder();
    process.stdin.on("data", (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.type === "input") session.write(frame.data);
        else if (frame.type === "resize") void session.resize(frame.cols, frame.rows).catch(() => undefined);
        else session.end();
      }
    });
    // The server's exec stream closed without an end frame (it went away): the command's input ends too.
    process.stdin.on("end", () => session.end());
  } else {
    if (flags.tty && process.stdin.isTTY) {
      // An operator's `kubectl exec -it`: the CVM's terminal does the line editing and echo.
      process.stdin.setRawMode(true);
      process.stdout.on("resize", () => void session.resize(process.stdout.columns, process.stdout.rows));
    }
    process.stdin.on("data", (data) => session.write(data));
    process.stdin.on("end", () => session.end());
  }
  process.exitCode = await session.exited;
  process.stdin.destroy();
  await supervisor.close().catch(() => undefined);
}
