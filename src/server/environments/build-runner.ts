/**
 * Runs builds in the background through the provider: one live build per
 * environment in this process, abortable by stop and delete, each ending with
 * an outcome. The provider moves the environment through the build states
 * (`ctx.enter`), never backwards; a build settles as running, or as failed if
 * its environment is still building, or with whatever someone else moved it to.
 * Every write goes through the transitions.
 */

import type { Logger } from "pino";
import type { Build } from "../../core/build.js";
import { within } from "../../core/deadline.js";
import { buildingStates, type Environment, type EnvironmentState } from "../../core/environment.js";
import { CvmError } from "../../core/errors.js";
import type { BuildContext, Observation, Provider } from "../../core/provider.js";
import type { Store } from "../../core/store.js";
import type { EventBus } from "../event-bus.js";
import type { ServerMetrics } from "../metrics.js";
import type { PoolReservation, WarmPools } from "../pools.js";
import type { SettingsService } from "../settings-service.js";
import type { EnvironmentTransitions, Transitioned } from "./transition.js";
import type { WorkloadChanges } from "./workload-changes.js";

export type Outcome = NonNullable<Build["outcome"]>;
export type BuildKind = "create" | "start" | "rebuild";
export interface BuildOptions {
  keepDockerData?: boolean;
  /** A create's warm pool reservation: its member is claimed instead of a cold build, or the miss is logged. */
  pool?: PoolReservation;
}

export interface BuildRunnerOptions {
  store: Store;
  provider: Provider;
  settings: SettingsService;
  transitions: EnvironmentTransitions;
  bus: EventBus;
  metrics: ServerMetrics;
  logger: Logger;
  pools?: WarmPools;
  /** The provider's stop and discard, bounded: a failed build's clean-up ends too. */
  workloads: WorkloadChanges;
}

interface LiveBuild {
  buildId: string;
  controller: AbortController;
  done: Promise<void>;
}

/** How long stop, delete and close wait for an aborted build to wind down. */
const abortWaitMs = 30_000;
/** How long a workload a failed build was starting gets to stop. */
const cleanUpStopSeconds = 5;
const serverStopping = "the server is shutting down";

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The outcome a build ends with when someone else moved its environment on. */
const outcomeOfState: Partial<Record<EnvironmentState, Outcome>> = {
  stopping: "stopped",
  stopped: "stopped",
  deleting: "deleted",
  deleted: "deleted",
  running: "running",
};

/** What a settling write says of the build: the outcome it wrote, or the one someone else's move means. */
function outcomeOf(result: Transitioned | undefined, written: Outcome): Outcome {
  if (!result) return "deleted";
  return result.changed ? written : (outcomeOfState[result.after.state] ?? "failed");
}

export class BuildRunner {
  private readonly live = new Map<string, LiveBuild>();
  private stopping = false;

  constructor(private readonly deps: BuildRunnerOptions) {}

  /** Whether the server is shutting down: no new build begins. */
  get closing(): boolean {
    return this.stopping;
  }

  /** Whether a build of this process is working on the environment. */
  isRunning(environmentId: string): boolean {
    return this.live.has(environmentId);
  }

  /** Runs the environment's current build in the background. */
  launch(environment: Environment, kind: BuildKind, options: BuildOptions): void {
    const { buildId } = environment;
    if (!buildId) throw new CvmError("INTERNAL", `environment ${environment.id} has no build to run`);
    const controller = new AbortController();
    const done = this.run(environment.id, buildId, kind, controller.signal, options)
      .catch((error) => this.deps.logger.error({ err: error, environmentId: environment.id, buildId }, "build crashed"))
      .finally(() => {
        if (this.live.get(environment.id)?.buildId === buildId) this.live.delete(environment.id);
      });
    this.live.set(environment.id, { buildId, controller, done });
  }

  /** Aborts the environment's live build, if any, and waits for it to record its end. */
  async abort(environmentId: string, why: string): Promise<void> {
    const live = this.live.get(environmentId);
    if (!live) return;
    live.controller.abort(new CvmError("CONFLICT", why));
    await within(live.done, abortWaitMs);
  }

  /**
   * Aborts every build this process runs and waits for them to record their
   * end. On a provider that resumes builds they stay open for the next server.
   */
  async close(): Promise<void> {
    this.stopping = true;
    const live = [...this.live.values()];
    for (const build of live) build.controller.abort(new CvmError("UNAVAILABLE", serverStopping));
    await within(Promise.allSettled(live.map((b) => b.done)), abortWaitMs);
  }

  private async run(
    id: string,
    buildId: string,
    kind: BuildKind,
    signal: AbortSignal,
    options: BuildOptions,
  ): Promise<void> {
    const { store, provider, logger, metrics, bus, transitions } = this.deps;
    const started = performance.now();
    const log = (text: string) => transitions.appendLog(buildId, text);
    let outcome: Outcome = "failed";
    let suspended = false;
    let environment: Environment | undefined;
    try {
      const context: BuildContext = {
        settings: await this.deps.settings.get(),
        credentials: await store.environments.registryCredentials(id),
        log,
        enter: (state) => this.advance(id, state, signal),
        signal,
      };
      environment = await store.environments.get(id);
      if (!environment) throw new CvmError("NOT_FOUND", "the environment is gone");
      if (kind === "rebuild") {
        await log(`discarding the old workload${options.keepDockerData ? " (keeping the inner Docker data)" : ""}`);
        await this.deps.workloads.discard(environment, { keepDockerData: options.keepDockerData ?? false });
      }
      const claimed = options.pool && (await this.deps.pools?.claim(environment, options.pool, context));
      const observation =
        claimed ||
        (kind === "start" ? await provider.start(environment, context) : await provider.build(environment, context));
      signal.throwIfAborted();
      outcome = await this.settleSuccess(id, observation);
    } catch (error) {
      const reason = signal.aborted ? messageOf(signal.reason) : messageOf(error);
      if (signal.aborted && reason === serverStopping && provider.resumesBuilds) {
        suspended = true;
        await log("server stopping: the build goes on when a server starts again").catch(() => undefined);
      } else if (signal.aborted && reason !== serverStopping) {
        outcome = await this.outcomeNow(id);
        await log(`build ended: ${reason}`).catch(() => undefined);
      } else {
        logger.warn({ err: error, environmentId: id, buildId }, "build failed");
        await log(`build failed: ${reason}`).catch(() => undefined);
        outcome = await this.settleFailure(id, signal.aborted ? `interrupted: ${reason}` : reason);
        if (outcome === "failed" && environment) await this.removeWhatItMade(environment, kind, log);
      }
    } finally {
      if (!suspended) {
        await transitions.finishBuild(buildId, outcome).catch((error) => {
          logger.error({ err: error, buildId }, "could not record the build's end");
          bus.buildActivity(buildId, outcome);
        });
      } else {
        bus.buildActivity(buildId);
      }
      metrics.buildDuration.observe({ outcome }, (performance.now() - started) / 1000);
    }
  }

  /**
   * After a build failed (or was cut off for good), nothing it made keeps
   * running while the environment says failed: a new workload (create,
   * rebuild) is removed, home kept; one that was only being started is stopped.
   */
  async removeWhatItMade(environment: Environment, kind: BuildKind, log: (text: string) => Promise<void>) {
    const { workloads, logger } = this.deps;
    try {
      if (kind === "start") {
        await workloads.stop(environment, cleanUpStopSeconds);
        await log("stopped the workload this build was starting");
      } else {
        await workloads.discard(environment, { keepDockerData: true });
        await log("removed the workload this build made (home kept)");
      }
    } catch (error) {
      logger.warn({ err: error, environmentId: environment.id }, "could not clear up after a failed build");
      await log(`could not clear up after the build: ${messageOf(error)}`).catch(() => undefined);
    }
  }

  /**
   * ctx.enter: moves between build states; refuses once someone else has moved
   * the environment out of them. A build never moves backwards: entering a
   * state it is already past (a resumed build retracing its steps) changes nothing.
   */
  private async advance(id: string, state: EnvironmentState, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const moved = await this.deps.transitions.transition(id, (current) => {
      if (current.state === state) return undefined;
      if (buildingStates.indexOf(state) < buildingStates.indexOf(current.state)) return undefined;
      if (!buildingStates.includes(current.state)) {
        throw new CvmError("CONFLICT", `the environment is ${current.state} now`);
      }
      return { to: state };
    });
    if (!moved) throw new CvmError("NOT_FOUND", "the environment is gone");
  }

  private async settleSuccess(id: string, observation: Observation): Promise<Outcome> {
    if (!observation.running) {
      return this.settleFailure(id, observation.reason ?? "the workload is not running after its build");
    }
    const { runtime, systemd, failedUnits, docker } = observation;
    const settled = await this.deps.transitions.transition(id, (current) =>
      buildingStates.includes(current.state)
        ? { to: "running", patch: { runtime, systemd, failedUnits, docker } }
        : undefined,
    );
    return outcomeOf(settled, "running");
  }

  /** Fails the environment with the reason while it is still building; a stop or delete meanwhile stands. */
  private async settleFailure(id: string, reason: string): Promise<Outcome> {
    return outcomeOf(await this.deps.transitions.fail(id, reason, buildingStates), "failed");
  }

  private async outcomeNow(id: string): Promise<Outcome> {
    const current = await this.deps.store.environments.get(id);
    return current ? (outcomeOfState[current.state] ?? "failed") : "deleted";
  }
}
