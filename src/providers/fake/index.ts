/**
 * A FAKE provider, for tests only: no engine, no cluster, nothing runs. Its
 * builds follow a script, like Coder's echo provisioner: succeed, fail with a
 * reason at a step, hang at a step until aborted, take their time over each
 * step, or leave a workload that vanishes. The rules, races and reconcile of
 * the environment service are tested against it in milliseconds; what only a
 * real engine shows is tested against the real providers under test/.
 *
 * Its workloads live in this object's memory, so a second server given the
 * same fake finds them, as a restarted server finds containers or Pods. So do
 * its warm pool's members; each image's registry digest is a map a test sets.
 */

import { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { Environment } from "../../core/environment.js";
import { CvmError } from "../../core/errors.js";
import type { ListeningPort } from "../../core/listening-ports.js";
import type {
  BuildContext,
  ExecOptions,
  ExecSession,
  LabeledWorkload,
  Observation,
  PoolCapacity,
  Provider,
  UnixListener,
  WorkloadPool,
} from "../../core/provider.js";
import { memberEnvironment, type PoolMember } from "../../core/warm-pool.js";
import { observation } from "../../testing/fixtures.js";

export type BuildStep = Parameters<BuildContext["enter"]>[0];
const steps: readonly BuildStep[] = ["pulling", "creating", "starting"];

/** What a build does; every field is optional, and the empty script builds and runs. */
export interface FakeScript {
  /** Fails the build with `reason` once it has entered this step. */
  failAt?: BuildStep;
  reason?: string;
  /** Waits at this step until the build is aborted (stop, delete, server shutdown). */
  hangAt?: BuildStep;
  /** Milliseconds each step takes. */
  stepMs?: number;
  /** What the workload reports once built; `running: false` ends the build with a workload that does not run. */
  observation?: Partial<Observation>;
  /** The workload is gone as soon as its build ends, as if removed behind cvm's back. */
  vanish?: boolean;
  /** Ports that listen inside once it runs; each echoes what it is sent. */
  ports?: number[];
  /** Stop and remove fail with these messages. */
  stopFails?: string;
  removeFails?: string;
  /** Remove never answers, as an engine stuck on the container (Docker 20.10 can wait forever for an exit). */
  removeHangs?: boolean;
  /** Claiming a warm pool's member of this script fails with this message. */
  claimFails?: string;
}

export interface FakeProviderOptions {
  /** The script of every build that has none of its own. */
  script?: FakeScript;
  /** Whether build() continues a workload an interrupted build of the same build id left (as kubernetes does). */
  resumesBuilds?: boolean;
}

interface FakeWorkload {
  environmentId: string;
  ref: string;
  buildId?: string;
  running: boolean;
  observation: Observation;
}

/** A provider call, as the fake recorded it. */
export interface FakeCall {
  method: "build" | "start" | "stop" | "remove" | "discard" | "removeWorkload" | "fill" | "claim" | "drain";
  environmentId: string;
  /** remove: whether home was to be kept. */
  keepHome?: boolean;
}

export class FakeProvider implements Provider {
  readonly name = "fake" as const;
  readonly resumesBuilds: boolean;
  /** Every call that changes a workload, in order. */
  readonly calls: FakeCall[] = [];
  private readonly workloads = new Map<string, FakeWorkload>();
  private readonly scripts = new Map<string, FakeScript>();
  private readonly poolMembers = new Map<string, PoolMember>();
  /** Each image's digest in its "registry"; `sha256:1` unless set. Changing it makes pooled members stale. */
  readonly imageVersions = new Map<string, string>();
  /** The machine its pool members would run on: 64 CPUs and 256 GiB unless a test says otherwise. */
  capacity: PoolCapacity | undefined = { cpu: 64, memoryGiB: 256 };

  /** Warm pools, held in memory: members are workloads under their own ids, claimed by renaming. */
  readonly pool: WorkloadPool = {
    members: async () =>
      [...this.poolMembers.values()].map((member) =>
        member.state === "ready" && !this.workloads.get(member.id)?.running
          ? { ...member, state: "failed" as const, reason: "its workload vanished" }
          : member,
      ),
    fill: async (member, context) => {
      this.calls.push({ method: "fill", environmentId: member.id });
      this.poolMembers.set(member.id, { ...member, state: "filling" });
      await this.build(memberEnvironment(member, "userns"), context);
      const ready: PoolMember = {
        ...member,
        state: "ready",
        imageVersion: this.versionOf(member.image),
        readyAt: new Date().toISOString(),
      };
      if (this.poolMembers.has(member.id)) this.poolMembers.set(member.id, ready);
      return ready;
    },
    claim: async (member, environment, context) => {
      this.calls.push({ method: "claim", environmentId: member.id });
      if (!this.poolMembers.delete(member.id)) throw new CvmError("CONFLICT", "no such pool member");
      const script = this.scriptOf(environment);
      if (script.claimFails) throw new CvmError("INTERNAL", script.claimFails);
      await context.enter("starting");
      await context.log(`fake: claimed ${member.id} as ${environment.name}`);
      return this.run(environment, script);
    },
    drain: async (member) => {
      this.calls.push({ method: "drain", environmentId: member.id });
      this.poolMembers.delete(member.id);
      this.workloads.delete(member.id);
    },
    forget: async (member) => {
      this.poolMembers.delete(member.id);
    },
    imageVersion: async (image) => this.versionOf(image),
    capacity: async () => this.capacity,
  };

  constructor(private readonly options: FakeProviderOptions = {}) {
    this.resumesBuilds = options.resumesBuilds ?? false;
  }

  /** Scripts the builds of an environment, by its id or name, or of every environment of an image. */
  script(key: string, script: FakeScript): void {
    this.scripts.set(key, script);
  }

  /** The workload disappears behind cvm's back (a container removed, a node lost). */
  vanish(environmentId: string): void {
    this.workloads.delete(environmentId);
  }

  /** The workload stops behind cvm's back (an out-of-memory kill, an exit). */
  stopBehindBack(environmentId: string, reason: string): void {
    const workload = this.workloads.get(environmentId);
    if (workload) {
      workload.running = false;
      workload.observation = { ...workload.observation, running: false, reason };
    }
  }

  /** A labeled workload that belongs to no environment. */
  orphan(environmentId: string): string {
    return this.place(environmentId, undefined, observation()).ref;
  }

  hasWorkload(environmentId: string): boolean {
    return this.workloads.has(environmentId);
  }

  async build(environment: Environment, context: BuildContext): Promise<Observation> {
    this.calls.push({ method: "build", environmentId: environment.id });
    const script = this.scriptOf(environment);
    const found = this.workloads.get(environment.id);
    if (found && this.resumesBuilds && found.buildId === environment.buildId) {
      await context.log(`fake: adopting the workload of build ${environment.buildId}`);
    } else {
      this.workloads.delete(environment.id);
    }
    for (const step of steps) {
      await this.step(environment, context, script, step);
      if (step === "creating" && !this.workloads.has(environment.id)) {
        this.place(environment.id, environment.buildId, observation({ running: false }));
      }
    }
    return this.run(environment, script);
  }

  async start(environment: Environment, context: BuildContext): Promise<Observation> {
    this.calls.push({ method: "start", environmentId: environment.id });
    if (!this.workloads.has(environment.id)) {
      await context.log("fake: no workload for this environment any more; building it again");
      return this.build(environment, context);
    }
    const script = this.scriptOf(environment);
    await this.step(environment, context, script, "starting");
    return this.run(environment, script);
  }

  async stop(environment: Environment): Promise<void> {
    this.calls.push({ method: "stop", environmentId: environment.id });
    const script = this.scriptOf(environment);
    if (script.stopFails) throw new CvmError("UNAVAILABLE", script.stopFails);
    const workload = this.workloads.get(environment.id);
    if (workload) workload.running = false;
  }

  async remove(environment: Environment, options: { keepHome: boolean }): Promise<void> {
    this.calls.push({ method: "remove", environmentId: environment.id, keepHome: options.keepHome });
    const script = this.scriptOf(environment);
    if (script.removeFails) throw new CvmError("UNAVAILABLE", script.removeFails);
    if (script.removeHangs) await new Promise<never>(() => {});
    this.workloads.delete(environment.id);
  }

  async discard(environment: Environment): Promise<void> {
    this.calls.push({ method: "discard", environmentId: environment.id });
    this.workloads.delete(environment.id);
  }

  async observe(environment: Environment): Promise<Observation> {
    const workload = this.workloads.get(environment.id);
    if (!workload)
      return observation({
        exists: false,
        running: false,
        runtime: environment.runtime,
        reason: "no fake workload for this environment",
      });
    return workload.running ? workload.observation : { ...workload.observation, running: false };
  }

  async listeningPorts(environment: Environment): Promise<ListeningPort[]> {
    if (!this.workloads.get(environment.id)?.running) return [];
    return (this.scriptOf(environment).ports ?? []).map((port) => ({ port, addresses: ["127.0.0.1"] }));
  }

  /** A connection to a scripted port echoes what it is sent; any other port has nothing listening. */
  async dial(environment: Environment, port: number): Promise<Duplex> {
    if (!this.workloads.get(environment.id)?.running) throw new CvmError("CONFLICT", "The environment is not running");
    if (!(this.scriptOf(environment).ports ?? []).includes(port)) {
      throw new CvmError("UNAVAILABLE", `nothing listens on port ${port} inside the environment`);
    }
    const echo: Duplex = new Duplex({
      read() {},
      write(chunk, _encoding, done) {
        echo.push(chunk);
        done();
      },
      final(done) {
        echo.push(null);
        done();
      },
    });
    return echo;
  }

  async listenUnix(): Promise<UnixListener> {
    throw new CvmError("UNAVAILABLE", "The fake provider has no sockets inside");
  }

  /** Echoes the command, then its input; exits 0 when the input ends, or on a line `exit`, as a shell would. */
  async exec(environment: Environment, options: ExecOptions): Promise<ExecSession> {
    if (!this.workloads.get(environment.id)?.running) {
      throw new CvmError("CONFLICT", "The environment is not running");
    }
    const listeners: ((stream: "stdout" | "stderr", data: Uint8Array) => void)[] = [];
    const emit = (text: string) => {
      for (const listener of listeners) listener("stdout", Buffer.from(text));
    };
    let exit: (code: number) => void = () => undefined;
    const exited = new Promise<number>((resolve) => {
      exit = resolve;
    });
    let typed = "";
    return {
      write: (data) => {
        const text = typeof data === "string" ? data : Buffer.from(data).toString();
        emit(text);
        typed = `${typed}${text}`.slice(-64);
        if (/(^|[\r\n])exit[\r\n]$/.test(typed)) exit(0);
      },
      end: () => exit(0),
      resize: async () => undefined,
      onOutput: (listener) => {
        // The command's line goes to the first listener, so none is missed before it attaches.
        if (listeners.push(listener) === 1) emit(`${options.command.join(" ")}\n`);
      },
      exited,
      kill: () => exit(137),
    };
  }

  /** Every workload but a warm pool's members, which belong to no environment yet. */
  async listWorkloads(): Promise<LabeledWorkload[]> {
    return [...this.workloads.values()]
      .filter((w) => !this.poolMembers.has(w.environmentId))
      .map(({ environmentId, ref, running }) => ({ environmentId, ref, running }));
  }

  private versionOf(image: string): string {
    return this.imageVersions.get(image) ?? "sha256:1";
  }

  async removeWorkload(ref: string): Promise<void> {
    const workload = [...this.workloads.values()].find((w) => w.ref === ref);
    if (!workload) return;
    this.calls.push({ method: "removeWorkload", environmentId: workload.environmentId });
    this.workloads.delete(workload.environmentId);
  }

  async close(): Promise<void> {}

  private scriptOf(environment: Environment): FakeScript {
    return (
      this.scripts.get(environment.id) ??
      this.scripts.get(environment.name) ??
      this.scripts.get(environment.image) ??
      this.options.script ??
      {}
    );
  }

  private async step(environment: Environment, context: BuildContext, script: FakeScript, step: BuildStep) {
    context.signal.throwIfAborted();
    await context.enter(step);
    await context.log(`fake: ${step} ${environment.image}`);
    if (script.stepMs) await sleep(script.stepMs, undefined, { signal: context.signal });
    if (script.failAt === step) throw new CvmError("UNAVAILABLE", script.reason ?? `the script fails at ${step}`);
    if (script.hangAt === step) await untilAborted(context.signal);
  }

  private run(environment: Environment, script: FakeScript): Observation {
    const built = observation({ runtime: environment.runtime, ...script.observation });
    if (script.vanish) this.workloads.delete(environment.id);
    else this.place(environment.id, environment.buildId, built);
    return built;
  }

  private place(environmentId: string, buildId: string | undefined, observed: Observation): FakeWorkload {
    const workload = {
      environmentId,
      ref: `fake-${environmentId}`,
      buildId,
      running: observed.running,
      observation: observed,
    };
    this.workloads.set(environmentId, workload);
    return workload;
  }
}

export function createFakeProvider(options: FakeProviderOptions = {}): FakeProvider {
  return new FakeProvider(options);
}

function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}
