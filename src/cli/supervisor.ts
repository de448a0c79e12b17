/**
 * `cvm supervisor`: what a CVM's Pod runs (never people). It reads the
 * environment from the Pod's variables and files (the Secret's report token
 * and registry credentials, its own resources through the downward API),
 * runs the same supervisor as on one machine, reports every build-log line and
 * state to the server over the environment's report channel, marks the Pod
 * ready once the environment is, and stops the environment cleanly when the
 * Pod is deleted. `cvm supervisor exec` runs a command in the environment.
 */

import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Command } from "commander";
import { pino } from "pino";
import type { Environment, RegistryCredentials } from "../core/environment.js";
import type { BuildContext, Observation, SupervisorReport } from "../core/provider.js";
import { defaultSettings, type InfrastructureSettings, type RuntimeChoice } from "../core/settings.js";
import { type CvmSupervisorOptions, createCvmSupervisor } from "../supervisor/index.js";

/** What the Pod tells its supervisor (pod-spec.ts writes these). */
export interface PodEnvironment {
  environment: Environment;
  settings: InfrastructureSettings;
  credentials?: RegistryCredentials;
  reportUrl?: string;
  reportToken?: string;
  homeDir: string;
  dockerDataDir: string;
  runtimeDir: string;
  readyFile: string;
  discardDockerData: boolean;
  stopTimeoutSeconds: number;
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`${name} is not set: cvm supervisor runs inside a CVM's Pod`);
  return value;
}

function readIfPresent(file: string | undefined): string | undefined {
  return file && existsSync(file) ? readFileSync(file, "utf8").trim() : undefined;
}

/** The first credentials of a docker config file (the environment's Secret holds at most one registry's). */
export function credentialsFrom(dockerConfig: string | undefined): RegistryCredentials | undefined {
  if (!dockerConfig) return undefined;
  const auths = (JSON.parse(dockerConfig) as { auths?: Record<string, { username?: string; password?: string }> })
    .auths;
  const first = Object.values(auths ?? {})[0];
  return first?.username && first.password ? { username: first.username, password: first.password } : undefined;
}

export function podEnvironment(env: NodeJS.ProcessEnv = process.env): PodEnvironment {
  const now = new Date().toISOString();
  const runtime = (env.CVM_RUNTIME ?? "auto") as RuntimeChoice;
  const environment: Environment = {
    id: required(env, "CVM_ENVIRONMENT_ID"),
    name: required(env, "CVM_ENVIRONMENT_NAME"),
    image: required(env, "CVM_IMAGE"),
    cvm: true,
    cpu: Number(env.CVM_CPU_LIMIT_MILLIS ?? 2000) / 1000,
    memoryGiB: Number(env.CVM_MEMORY_LIMIT_MIB ?? 4096) / 1024,
    diskGiB: 0,
    ownerId: "",
    ownerEmail: env.CVM_OWNER_EMAIL ?? "",
    state: "queued",
    runtime: runtime === "sysbox" ? "sysbox" : "userns",
    systemd: "unknown",
    failedUnits: [],
    docker: "unknown",
    buildId: env.CVM_BUILD_ID || undefined,
    timeline: [],
    createdAt: now,
    updatedAt: now,
    version: 1,
  };
  return {
    environment,
    settings: {
      ...defaultSettings,
      cvmEnabled: true,
      runtime,
      fuseDevice: env.CVM_FUSE_DEVICE !== "false",
      tunDevice: env.CVM_TUN_DEVICE !== "false",
    },
    credentials: credentialsFrom(readIfPresent(env.CVM_REGISTRY_AUTH_FILE)),
    reportUrl: env.CVM_REPORT_URL || undefined,
    reportToken: readIfPresent(env.CVM_REPORT_TOKEN_FILE),
    homeDir: env.CVM_HOME_DIR ?? "/var/lib/cvm/volumes/home",
    dockerDataDir: env.CVM_DOCKER_DATA_DIR ?? "/var/lib/cvm/volumes/docker",
    runtimeDir: env.CVM_RUNTIME_DIR ?? "/var/lib/cvm/runtime",
    readyFile: env.CVM_READY_FILE ?? "/var/lib/cvm/runtime/ready",
    discardDockerData: env.CVM_DISCARD_DOCKER_DATA === "true",
    stopTimeoutSeconds: Number(env.CVM_STOP_TIMEOUT_SECONDS ?? 30),
  };
}

/**
 * Sends reports in order, batching lines written while one is in flight, and
 * retrying while the server is unreachable: a report is never worth the
 * environment.
 */
export class SupervisorReporter {
  private pending: SupervisorReport[] = [];
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly url: string | undefined,
    private readonly environmentId: string,
    private readonly token: string | undefined,
    private readonly warn: (message: string) => void,
  ) {}

  line(text: string): void {
    this.send({ lines: [text] });
  }

  send(report: SupervisorReport): void {
    if (!this.url || !this.token) return;
    this.pending.push(report);
    this.flushing ??= this.flush().finally(() => {
      this.flushing = undefined;
    });
  }

  /** Resolves once everything sent so far has been delivered (or given up on). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      // Consecutive line-only reports travel together.
      const merged: SupervisorReport[] = [];
      for (const report of batch) {
        const last = merged.at(-1);
        if (last && !last.state && !last.observation && Object.keys(report).every((k) => k === "lines")) {
          last.lines = [...(last.lines ?? []), ...(report.lines ?? [])];
        } else merged.push({ ...report });
      }
      for (const report of merged) await this.deliver(report);
    }
  }

  private async deliver(report: SupervisorReport): Promise<void> {
    const target = `${this.url?.replace(/\/$/, "")}/api/v1/environments/${encodeURIComponent(this.environmentId)}/supervisor-report`;
    for (let attempt = 0; attempt < 8; attempt++) {
      try {
        const response = await fetch(target, {
          method: "POST",
          headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
          body: JSON.stringify(report),
        });
        if (response.ok) return;
        // A refusal will not change by retrying.
        if (response.status < 500) {
          this.warn(`the server refused a report: ${response.status} ${await response.text()}`);
          return;
        }
      } catch (error) {
        if (attempt === 7) this.warn(`could not reach the server: ${(error as Error).message}`);
      }
      await sleep(Math.min(250 * 2 ** attempt, 5000));
    }
  }
}

function emptyDirectory(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true });
}

function observationReport(observation: Observation): SupervisorReport["observation"] {
  const { runtime, systemd, failedUnits, docker } = observation;
  return { runtime, systemd, failedUnits, docker };
}

async function supervise(): Promise<void> {
  const logger = pino({ base: { service: "cvm-supervisor" } });
  const pod = podEnvironment();
  const { environment } = pod;
  const reporter = new SupervisorReporter(pod.reportUrl, environment.id, pod.reportToken, (message) =>
    logger.warn({ environmentId: environment.id }, message),
  );
  const log = async (text: string) => {
    logger.info({ environmentId: environment.id }, text);
    reporter.line(text);
  };
  if (pod.discardDockerData) {
    await log("rebuild: emptying the inner Docker's data");
    emptyDirectory(pod.dockerDataDir);
  }
  const options: CvmSupervisorOptions & { volumeSources: { home: string; dockerData: string } } = {
    dataDir: pod.runtimeDir,
    logger,
    // The claim's subpaths: the supervisor binds them as the environment's /home and /var/lib/docker.
    volumeSources: { home: pod.homeDir, dockerData: pod.dockerDataDir },
  };
  const supervisor = await createCvmSupervisor(options);
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

async function execInEnvironment(command: string[], flags: { tty?: boolean }): Promise<void> {
  const pod = podEnvironment();
  const logger = pino({ level: "warn" });
  const supervisor = await createCvmSupervisor({ dataDir: pod.runtimeDir, logger });
  const session = await supervisor.exec(pod.environment, {
    command: command.length > 0 ? command : ["/bin/bash", "-l"],
    tty: flags.tty ?? false,
    cols: process.stdout.columns,
    rows: process.stdout.rows,
  });
  session.onOutput((stream, data) => (stream === "stdout" ? process.stdout : process.stderr).write(data));
  process.stdin.on("data", (data) => session.write(data));
  process.stdin.on("end", () => session.end());
  process.exitCode = await session.exited;
  process.stdin.destroy();
  await supervisor.close().catch(() => undefined);
}

export function register(program: Command): void {
  const supervisor = program
    .command("supervisor")
    .description("run inside a CVM's Pod: supervise its environment and report to the server (not for people)");
  supervisor
    .command("run", { isDefault: true })
    .description("build the environment, report, keep it running until the Pod is deleted")
    .action(supervise);
  supervisor
    .command("exec")
    .description("run a command in the environment this Pod supervises")
    .option("--tty", "allocate a terminal")
    .argument("[command...]", "the command (default: a login shell)")
    .action((command: string[], flags: { tty?: boolean }) => execInEnvironment(command, flags));
}
