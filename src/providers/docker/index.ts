/**
 * The docker provider: environments on this machine. Standard environments
 * are plain containers on the host engine (standard-environments.ts); CVMs
 * belong to the CVM supervisor (src/supervisor), created on first use, to
 * which every call for an environment with `cvm: true` is handed.
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import type Dockerode from "dockerode";
import { answerWithin } from "../../core/deadline.js";
import type { Environment } from "../../core/environment.js";
import type {
  BuildContext,
  ExecOptions,
  ExecSession,
  LabeledWorkload,
  Observation,
  Provider,
  WorkloadPool,
} from "../../core/provider.js";
import type { InfrastructureSettings } from "../../core/settings.js";
import { defaultDockerHost, dockerClient, isLocalEngine } from "../../docker/index.js";
import { type InsideAccess, NamespaceBridge } from "../../netns/index.js";
import type { CvmSupervisor } from "../../supervisor/index.js";
import type { ProviderOptions } from "../index.js";
import { EnvironmentFirewall, type FirewalledEngine } from "./environment-firewall.js";
import { StandardEnvironments } from "./standard-environments.js";

export async function createDockerProvider(options: ProviderOptions): Promise<Provider> {
  const dockerHost = options.dockerHost ?? defaultDockerHost;
  const docker = dockerClient(dockerHost);
  // An engine that accepts the connection and never answers is as unreachable as one that refuses it.
  await answerWithin(docker.ping(), 10_000, "the engine's ping").catch((error) => {
    throw new Error(`the docker provider cannot reach the engine at ${dockerHost}: ${(error as Error).message}`, {
      cause: error,
    });
  });
  return new DockerProvider(options, dockerHost, docker);
}

/** What both standard environments and the CVM supervisor do for one environment. */
type EnvironmentBackend = Pick<
  CvmSupervisor,
  "build" | "start" | "stop" | "remove" | "discard" | "observe" | "exec" | "pid"
>;

class DockerProvider implements Provider {
  readonly name = "docker" as const;
  /** A build cut off by a server stopping or dying goes on with the container it made (StandardEnvironments.build, the supervisor's). */
  readonly resumesBuilds = true;
  private readonly standard: StandardEnvironments;
  private supervisor?: Promise<CvmSupervisor>;

  private readonly firewall: EnvironmentFirewall;
  /** Ports and sockets inside either kind, through cvm-nsbridge in the namespaces of its process (src/netns). */
  private readonly inside: InsideAccess;
  private readonly hostEngineIsLocal: boolean;

  constructor(
    private readonly options: ProviderOptions,
    private readonly dockerHost: string,
    private readonly docker: Dockerode,
  ) {
    this.hostEngineIsLocal = isLocalEngine(dockerHost);
    this.inside = new NamespaceBridge(join(options.dataDir, "bin")).inside(async (environment) =>
      (await this.for(environment)).pid(environment),
    );
    this.firewall = new EnvironmentFirewall({
      installationId: options.installationId,
      dataDir: options.dataDir,
      logger: options.logger,
      engines: () => this.firewalledEngines(),
    });
    this.standard = new StandardEnvironments(
      docker,
      options.logger,
      this.hostEngineIsLocal,
      options.installationId,
      () => this.applyPolicy(this.hostEngineIsLocal),
      this.hostEngineIsLocal ? join(options.dataDir, "disks") : undefined,
    );
  }

  /**
   * The engines whose containers the network policy covers: the host's when it
   * runs on this machine (a remote engine's iptables are not this machine's),
   * and cvm's own once it runs.
   */
  private async firewalledEngines(): Promise<FirewalledEngine[]> {
    const engines: FirewalledEngine[] = [];
    if (this.hostEngineIsLocal) {
      engines.push({
        docker: this.docker,
        addresses: () => this.standard.addresses(),
        bridge: () => this.standard.bridge(),
      });
    }
    // CVMs keep running while no server does: after a restart the policy takes them in at once.
    const supervisor = this.cvmsMayExist() ? await this.cvms().catch(() => undefined) : undefined;
    if (supervisor) {
      engines.push({
        docker: supervisor.engineClient(),
        addresses: () => supervisor.addresses(),
        bridge: () => supervisor.bridge(),
      });
    }
    return engines;
  }

  /** Brings the network policy up to date; answers what the build log should say of it. */
  private async applyPolicy(covered: boolean): Promise<string | undefined> {
    if (!covered) return "network: the engine is not on this machine, so cvm's network policy does not cover it";
    try {
      await this.firewall.sync();
      return undefined;
    } catch (error) {
      this.options.logger.error({ err: error }, "could not apply the network policy");
      return `network: cvm's network policy could not be applied: ${(error as Error).message}`;
    }
  }

  async configure(settings: InfrastructureSettings): Promise<void> {
    await this.firewall.configure(settings.network).catch((error) => {
      this.options.logger.error({ err: error }, "could not apply the network policy");
    });
  }

  /**
   * The CVM supervisor, made on first use (and loaded then: a server without
   * CVMs never loads it); a failed start is retried on the next use.
   */
  private cvms(): Promise<CvmSupervisor> {
    this.supervisor ??= import("../../supervisor/index.js")
      .then(({ createCvmSupervisor }) =>
        createCvmSupervisor({
          dataDir: this.options.dataDir,
          logger: this.options.logger,
          hostDockerHost: this.dockerHost,
          installationId: this.options.installationId,
          beforeRelease: () => this.applyPolicy(true),
        }),
      )
      .catch((error) => {
        this.supervisor = undefined;
        throw error;
      });
    return this.supervisor;
  }

  /** Warm pools of CVMs: the supervisor's (src/supervisor/warm-pool.ts). */
  readonly pool: WorkloadPool = {
    members: async () => (this.cvmsMayExist() ? (await this.cvms()).pool.members() : []),
    fill: async (member, context) => (await this.cvms()).pool.fill(member, context),
    claim: async (member, environment, context) => (await this.cvms()).pool.claim(member, environment, context),
    drain: async (member) => (await this.cvms()).pool.drain(member),
    forget: async (member) => (await this.cvms()).pool.forget(member),
    imageVersion: async (image, credentials) => (await this.cvms()).pool.imageVersion(image, credentials),
  };

  /**
   * Whether CVMs may exist: the supervisor is up, or its engine left state in
   * the data dir (`<dataDir>/engine`, see src/supervisor/engine.ts). Listing
   * workloads must not start an engine on a machine that never ran a CVM.
   */
  private cvmsMayExist(): boolean {
    return this.supervisor !== undefined || existsSync(join(this.options.dataDir, "engine"));
  }

  private async for(environment: Environment): Promise<EnvironmentBackend> {
    return environment.cvm ? this.cvms() : this.standard;
  }

  async build(environment: Environment, context: BuildContext): Promise<Observation> {
    return (await this.for(environment)).build(environment, context);
  }

  async start(environment: Environment, context: BuildContext): Promise<Observation> {
    return (await this.for(environment)).start(environment, context);
  }

  async stop(environment: Environment, timeoutSeconds: number): Promise<void> {
    await (await this.for(environment)).stop(environment, timeoutSeconds);
    await this.applyPolicy(true);
  }

  async remove(environment: Environment, options: { keepHome: boolean; keepDockerData?: boolean }): Promise<void> {
    await (await this.for(environment)).remove(environment, options);
    await this.applyPolicy(true);
  }

  async discard(environment: Environment, options: { keepDockerData: boolean }): Promise<void> {
    await (await this.for(environment)).discard(environment, options);
    await this.applyPolicy(true);
  }

  async observe(environment: Environment): Promise<Observation> {
    return (await this.for(environment)).observe(environment);
  }

  async exec(environment: Environment, options: ExecOptions): Promise<ExecSession> {
    return (await this.for(environment)).exec(environment, options);
  }

  readonly dial: InsideAccess["dial"] = (...args) => this.inside.dial(...args);
  readonly spliceSocket: InsideAccess["spliceSocket"] = (...args) => this.inside.spliceSocket(...args);
  readonly listeningPorts: InsideAccess["listeningPorts"] = (...args) => this.inside.listeningPorts(...args);
  readonly listenUnix: InsideAccess["listenUnix"] = (...args) => this.inside.listenUnix(...args);

  async listWorkloads(): Promise<LabeledWorkload[]> {
    const standard = await this.standard.listWorkloads();
    if (!this.cvmsMayExist()) return standard;
    const cvms = await this.cvms()
      .then((supervisor) => supervisor.listWorkloads())
      .catch((error) => {
        this.options.logger.warn({ err: error }, "could not list CVM workloads");
        return [];
      });
    const seen = new Set(standard.map((w) => w.ref));
    return [...standard, ...cvms.filter((w) => !seen.has(w.ref))];
  }

  async removeWorkload(ref: string): Promise<void> {
    if (await this.standard.removeWorkload(ref)) return;
    if (this.cvmsMayExist()) await (await this.cvms()).removeWorkload(ref);
  }

  async close(): Promise<void> {
    await this.firewall
      .close()
      .catch((error) => this.options.logger.warn({ err: error }, "closing the network policy"));
    await this.standard.close();
    const supervisor = await this.supervisor?.catch(() => undefined);
    await supervisor?.close();
  }
}
