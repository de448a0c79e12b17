/**
 * Where environments run. `src/providers/docker` (the engine on this machine)
 * and `src/providers/kubernetes` (a Pod per environment) implement it; the
 * server never knows which.
 */

import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type {
  DockerStatus,
  Environment,
  EnvironmentState,
  IsolationRuntimeName,
  RegistryCredentials,
  SystemdStatus,
} from "./environment.js";
import type { ListeningPort } from "./listening-ports.js";
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
  /** Whom it runs as: a uid (the engine adds the account's groups) or a name; default the provider's (root in a CVM). */
  user?: string;
  /** The working directory; default the image's. */
  cwd?: string;
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

/** A unix socket inside an environment, owned by an account there (ids as the environment counts them). */
export interface UnixSocketSpec {
  path: string;
  uid: number;
  gid: number;
}

export interface UnixListener {
  /** Stops listening and removes the socket inside. */
  close(): Promise<void>;
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

/** A client's socket joined with a port inside by the provider (Provider.spliceSocket). */
export interface SplicedSocket {
  /** Resolves when either side has ended and the relay is over. */
  finished: Promise<void>;
  /** Ends the relay and the client's connection at once. */
  end(): void;
}

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
  /** What the machine the members run on has (the engine's CPUs and memory); pools may not ask for more. */
  capacity?(): Promise<PoolCapacity | undefined>;
}

/** The CPUs and memory of the machine a provider's pool members run on. */
export interface PoolCapacity {
  cpu: number;
  memoryGiB: number;
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
  /**
   * A TCP connection to `port` on the environment's own loopback, as a
   * process inside would make it (ssh -L, `cvm port-forward`, port URLs), so
   * a server bound to 127.0.0.1 inside is reached too. Nothing listening is
   * a CvmError saying so, at once. Ending the writable side half-closes.
   */
  dial(environment: Environment, port: number): Promise<Duplex>;
  /**
   * Joins a client's TCP socket with a connection to `port` inside without
   * the server copying the bytes (the docker provider has the kernel splice
   * them); `connected` answers the client before any byte flows. Optional:
   * a provider without it is dialed and piped.
   */
  spliceSocket?(
    environment: Environment,
    port: number,
    client: Socket,
    connected: () => Promise<void> | void,
  ): Promise<SplicedSocket>;
  /** The TCP ports something listens on inside the environment. */
  listeningPorts(environment: Environment): Promise<ListeningPort[]>;
  /**
   * A unix socket inside the environment whose connections are handed to
   * `onConnection` (SSH agent forwarding); removed when closed.
   */
  listenUnix(
    environment: Environment,
    spec: UnixSocketSpec,
    onConnection: (connection: Duplex) => void,
  ): Promise<UnixListener>;
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
