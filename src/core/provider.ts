/**
 * Where environments run. `src/providers/docker` (the engine on this machine)
 * and `src/providers/kubernetes` (a Pod per environment) implement it; the
 * server never knows which.
 */

import type {
  DockerStatus,
  Environment,
  EnvironmentState,
  IsolationRuntimeName,
  RegistryCredentials,
  SystemdStatus,
} from "./environment.js";
import type { PoolMember, SupervisorReport } from "./schemas.js";
import type { InfrastructureSettings } from "./settings.js";

// The report's shape is a zod schema in ./schemas.ts (the report route validates it); its type is re-exported here.
export type { SupervisorReport } from "./schemas.js";

/** What a provider is told while it works on one build: every step is a log line. */
export interface BuildContext {
  settings: InfrastructureSettings;
  credentials?: RegistryCredentials;
  /** Appends a line to the build log. */
  log(text: string): Promise<void>;
  /** Moves the environment to a build state (pulling, creating, starting). */
  enter(state: Extract<EnvironmentState, "pulling" | "creating" | "starting">): Promise<void>;
  /** Aborted when the user stops or deletes the environment mid-build. */
  signal: AbortSignal;
}

/** What a provider found of an environment's workload. */
export interface Observation {
  exists: boolean;
  running: boolean;
  runtime: IsolationRuntimeName;
  systemd: SystemdStatus;
  failedUnits: string[];
  docker: DockerStatus;
  /** Why it is not running, when the provider knows (exit code, OOM, evicted). */
  reason?: string;
}

export interface ExecOptions {
  command: string[];
  tty: boolean;
  cols?: number;
  rows?: number;
  env?: Record<string, string>;
}

/** A process running inside an environment, attached to its caller. */
export interface ExecSession {
  write(data: Uint8Array | string): void;
  /** Ends stdin. */
  end(): void;
  resize(cols: number, rows: number): Promise<void>;
  onOutput(listener: (stream: "stdout" | "stderr", data: Uint8Array) => void): void;
  /** Resolves with the exit code when the process ends. */
  exited: Promise<number>;
  kill(): void;
}

/** A workload carrying cvm's labels, as found in the engine or cluster. */
export interface LabeledWorkload {
  environmentId: string;
  /** The engine's or cluster's own name for it (container id, Pod name). */
  ref: string;
  running: boolean;
}

/** The build states a supervisor running away from the server (a Kubernetes Pod) reports reaching. */
export const supervisorReportStates = ["pulling", "creating", "starting", "running", "failed"] as const;

/**
 * Warm pools (core/warm-pool.ts): booted workloads held for a pool, each made
 * as an environment of its own id, so that claiming one is renaming it to the
 * environment that takes that id. A provider that can pool implements this;
 * the pool service (src/server/pools.ts) decides what to fill, drain and claim.
 */
export interface WorkloadPool {
  /** The members held, as recorded (after a server restart too); a member whose workload stopped or vanished is failed. */
  members(): Promise<PoolMember[]>;
  /** Records the member (so it is never taken for an orphan), builds it as the cold path does, and returns it ready. */
  fill(member: PoolMember, context: BuildContext): Promise<PoolMember>;
  /**
   * Makes a ready member the environment, which has the member's id: its
   * name (hostname), a fresh machine id, the requested limits, the owner;
   * returns what the environment reports. Throws when the member cannot be
   * claimed; the caller then builds cold.
   */
  claim(member: PoolMember, environment: Environment, context: BuildContext): Promise<Observation>;
  /** Removes a member's workload, home and disk, and its record. */
  drain(member: PoolMember): Promise<void>;
  /**
   * Drops a member's record and keeps its workload: a create took the
   * member's id and a server stopped before the claim, so the workload is
   * that environment's now (its resumed build makes it so).
   */
  forget(member: PoolMember): Promise<void>;
  /** The image's digest in its registry now, to tell a stale member; undefined when no registry answers. */
  imageVersion(image: string, credentials?: RegistryCredentials): Promise<string | undefined>;
}

export interface Provider {
  readonly name: "docker" | "kubernetes" | "fake";
  /** Warm pools of CVMs, where the provider can keep them. */
  readonly pool?: WorkloadPool;
  /**
   * Whether build() finds and continues a workload that an interrupted build
   * of the same build id left behind, so a restarted server can resume it.
   */
  readonly resumesBuilds?: boolean;
  /** Pull, create and start; returns once the environment is ready, or throws with a reason. */
  build(environment: Environment, context: BuildContext): Promise<Observation>;
  /** Starts an existing, stopped workload; rebuilds it if the workload is gone. */
  start(environment: Environment, context: BuildContext): Promise<Observation>;
  /** Stops within the timeout, letting systemd shut down cleanly; keeps everything. */
  stop(environment: Environment, timeoutSeconds: number): Promise<void>;
  /** Removes the workload and, unless kept, the home volume; leaves nothing else behind. */
  remove(environment: Environment, options: { keepHome: boolean; keepDockerData?: boolean }): Promise<void>;
  /** Removes the workload but keeps home (and, when asked, the inner Docker's data) for a rebuild. */
  discard(environment: Environment, options: { keepDockerData: boolean }): Promise<void>;
  observe(environment: Environment): Promise<Observation>;
  exec(environment: Environment, options: ExecOptions): Promise<ExecSession>;
  /** Every workload with cvm's labels, for reconciling with the store. */
  listWorkloads(): Promise<LabeledWorkload[]>;
  removeWorkload(ref: string): Promise<void>;
  /**
   * Providers whose supervisors report over the network (kubernetes) accept
   * those reports here; `token` is the environment's own report token, and a
   * wrong one is refused with a 401.
   */
  acceptSupervisorReport?(environmentId: string, token: string, report: SupervisorReport): Promise<void>;
  /**
   * Providers that enforce settings outside builds (the docker provider's
   * network policy) are told the settings when the server starts and after
   * every change.
   */
  configure?(settings: InfrastructureSettings): Promise<void>;
  close(): Promise<void>;
}
