/**
 * Brings the store in line with what the provider has. At start-up (and on
 * an admin's request) every environment no build of this process works on is
 * checked: a build left unfinished is resumed where the provider can pick it
 * up, and otherwise failed as interrupted with what it made removed; a stop or
 * delete left halfway is finished; a running environment whose workload
 * vanished is failed; every build ends with an outcome; labeled workloads
 * without an environment are reported and, when asked, removed. Showing a
 * running environment refreshes it from the provider's fresh observation the
 * same way.
 */

import type { Logger } from "pino";
import type { ReconcileReport } from "../../api/contract.js";
import { within } from "../../core/deadline.js";
import {
  buildingStates,
  type Environment,
  type EnvironmentState,
  unfinishedBuildKind,
} from "../../core/environment.js";
import type { Observation, Provider } from "../../core/provider.js";
import type { Store } from "../../core/store.js";
import type { EventBus } from "../event-bus.js";
import type { KeyedMutex } from "../keyed-mutex.js";
import { keepingHome } from "./actions.js";
import type { BuildRunner } from "./build-runner.js";
import type { EnvironmentTransitions } from "./transition.js";
import type { WorkloadChanges } from "./workload-changes.js";

export interface ReconcilerOptions {
  store: Store;
  provider: Provider;
  transitions: EnvironmentTransitions;
  runner: BuildRunner;
  mutex: KeyedMutex;
  bus: EventBus;
  logger: Logger;
  /** The provider's stop and removal, bounded: how a stop or delete left halfway is finished. */
  workloads: WorkloadChanges;
}

/** How long showing an environment waits for the provider's fresh observation before answering with the stored one. */
const observeTimeoutMs = 1500;
/** On a shared store, a build nobody has advanced for this long is taken as abandoned. */
const abandonedAfterMs = 10 * 60_000;
/** The states reconcile may find abandoned: mid-build, mid-stop, mid-delete, or running without a workload. */
const reconcilable: readonly EnvironmentState[] = [...buildingStates, "stopping", "deleting", "running"];
/** What each provider's workload is called in a reason a user reads. */
const workloadNoun: Record<Provider["name"], string> = {
  docker: "container",
  kubernetes: "Pod",
  fake: "fake workload",
};
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export class Reconciler {
  constructor(private readonly deps: ReconcilerOptions) {}

  async reconcile(options: { removeOrphans: boolean }): Promise<ReconcileReport> {
    const { store, provider, logger, runner, mutex } = this.deps;
    const workloads = await provider.listWorkloads();
    const withWorkload = new Set(workloads.map((w) => w.environmentId));
    const report: ReconcileReport = { vanished: [], resumed: [], finished: [], orphans: [] };
    const environments = await store.environments.list({});
    for (const listed of environments) {
      if (runner.isRunning(listed.id)) continue;
      await mutex.run(listed.id, async () => {
        const environment = await store.environments.get(listed.id);
        if (!environment || runner.isRunning(environment.id)) return;
        const reason = await this.reason(environment, withWorkload.has(environment.id));
        if (reason) await this.settle(environment, reason, report);
        await this.endBuilds(environment.id);
      });
    }
    const known = new Set(environments.map((e) => e.id));
    for (const workload of workloads.filter((w) => !known.has(w.environmentId))) {
      let removed = false;
      if (options.removeOrphans) {
        await provider.removeWorkload(workload.ref);
        removed = true;
      }
      report.orphans.push({ ref: workload.ref, environmentId: workload.environmentId, removed });
    }
    if (Object.values(report).some((found) => found.length > 0)) logger.info({ report }, "reconciled");
    return report;
  }

  /** Resumes, fails or finishes what an environment was left doing; says so in the report. */
  private async settle(environment: Environment, reason: string, report: ReconcileReport): Promise<void> {
    const { id, name, state, buildId } = environment;
    const { provider, runner, transitions } = this.deps;
    if (buildingStates.includes(state) && buildId) {
      const kind = unfinishedBuildKind(environment.timeline);
      if (provider.resumesBuilds) {
        await transitions.appendLog(buildId, `build resumed after ${reason}: continuing with what it made`);
        runner.launch(environment, kind === "start" ? "start" : "create", {});
        report.resumed.push({ id, name });
        return;
      }
      const failed = await transitions.fail(id, reason, buildingStates);
      if (failed?.changed) {
        await runner.removeWhatItMade(failed.after, kind === "start" ? "start" : "create", (text) =>
          transitions.appendLog(buildId, text),
        );
      }
      report.vanished.push({ id, name, reason });
      return;
    }
    if (state === "stopping" || state === "deleting") {
      const action = state === "stopping" ? "stop" : "delete";
      try {
        await (action === "stop" ? this.finishStop(environment, reason) : this.finishDelete(environment, reason));
        report.finished.push({ id, name, action });
      } catch (error) {
        const why = `${action} failed after ${reason}: ${messageOf(error)}`;
        await transitions.fail(id, why, [state]);
        report.vanished.push({ id, name, reason: why });
      }
      return;
    }
    await transitions.fail(id, reason, reconcilable);
    report.vanished.push({ id, name, reason });
  }

  /** A stop a server began and never finished: the workload is stopped now. */
  private async finishStop(environment: Environment, reason: string): Promise<void> {
    const { workloads, transitions } = this.deps;
    await workloads.stop(environment);
    await transitions.transition(environment.id, (current) =>
      current.state === "stopping" ? { to: "stopped", reason: `finished after ${reason}` } : undefined,
    );
  }

  /** A delete a server began and never finished: what is left of the workload goes, and the record with it. */
  private async finishDelete(environment: Environment, reason: string): Promise<void> {
    const { workloads, store, bus, logger } = this.deps;
    await workloads.remove(environment, { keepHome: environment.stateReason === keepingHome });
    await store.environments.remove(environment.id);
    bus.publish({ type: "deleted", id: environment.id, ownerId: environment.ownerId });
    logger.info({ environmentId: environment.id, reason }, "finished a delete left halfway");
  }

  /**
   * Every build of the environment that no build of this process runs ends
   * with an outcome: a build left open (its server died before it could say
   * how it ended) takes the one its environment's state means, or failed.
   * On a shared store only the abandoned ones (another replica may run the rest).
   */
  private async endBuilds(environmentId: string): Promise<void> {
    const { store, runner, transitions } = this.deps;
    if (runner.isRunning(environmentId)) return;
    const environment = await store.environments.get(environmentId);
    for (const build of await store.builds.listForEnvironment(environmentId)) {
      if (build.outcome) continue;
      const current = environment?.buildId === build.id;
      if (current && environment && buildingStates.includes(environment.state)) continue;
      if (!store.soleWriter && Date.now() - Date.parse(build.startedAt) < abandonedAfterMs) continue;
      const outcome =
        current && environment?.state === "running"
          ? "running"
          : current && environment?.state === "stopped"
            ? "stopped"
            : "failed";
      await transitions.appendLog(build.id, "build ended: no server was running it any more");
      await transitions.finishBuild(build.id, outcome);
    }
  }

  /**
   * A running environment as the provider sees it now, so systemd's and
   * Docker's status are fresh: failed if its workload stopped or vanished.
   * Answers with the stored one when the provider is slow or fails.
   */
  async refresh(environment: Environment): Promise<Environment> {
    if (environment.state !== "running" || this.deps.runner.isRunning(environment.id)) return environment;
    const observation = await within(
      this.deps.provider.observe(environment).catch((error) => {
        this.deps.logger.warn({ err: error, environmentId: environment.id }, "observe failed");
        return undefined;
      }),
      observeTimeoutMs,
    );
    if (!observation) return environment;
    return (await this.apply(environment, observation)) ?? environment;
  }

  /**
   * Why reconcile fails an environment no build of this process is working on,
   * or undefined to leave it. When this server is the store's only writer, an
   * unfinished build is an interrupted one; on a shared store another replica
   * may be running it, so only a build without progress for a while counts.
   */
  private async reason(environment: Environment, hasWorkload: boolean): Promise<string | undefined> {
    const { state } = environment;
    if (buildingStates.includes(state) || state === "stopping" || state === "deleting") {
      if (this.deps.store.soleWriter) return "interrupted by a server restart";
      const idleMs = Date.now() - (await this.lastActivity(environment));
      return idleMs > abandonedAfterMs
        ? `interrupted: no server has advanced it for ${Math.round(idleMs / 60_000)} minutes`
        : undefined;
    }
    if (state === "running" && !hasWorkload) {
      // The list was read a moment ago; a build that finished since has its workload now.
      const observed = await this.deps.provider.observe(environment).catch(() => undefined);
      if (observed?.exists) return undefined;
      return `workload vanished: no ${workloadNoun[this.deps.provider.name]} for this environment`;
    }
    return undefined;
  }

  /** When the environment or its current build last showed progress (a state change or a log line). */
  private async lastActivity(environment: Environment): Promise<number> {
    let latest = Date.parse(environment.updatedAt);
    if (environment.buildId) {
      const lines = await this.deps.store.builds.logs(environment.buildId);
      const last = lines.at(-1);
      if (last) latest = Math.max(latest, Date.parse(last.at));
    }
    return latest;
  }

  /** Writes what the observation shows, unless the environment changed since it was read (a build, a stop). */
  private async apply(environment: Environment, observation: Observation): Promise<Environment | undefined> {
    const { runner, transitions, mutex } = this.deps;
    if (!observation.exists || !observation.running) {
      const reason = observation.exists
        ? `workload stopped: ${observation.reason ?? "it is not running"}`
        : `workload vanished: ${observation.reason ?? "it no longer exists"}`;
      return mutex.run(environment.id, async () => {
        const failed = await transitions.transition(environment.id, (current) =>
          current.state === "running" && !runner.isRunning(current.id) ? { to: "failed", reason } : undefined,
        );
        return failed?.after;
      });
    }
    const { runtime, systemd, failedUnits, docker } = observation;
    const changed =
      runtime !== environment.runtime ||
      systemd !== environment.systemd ||
      docker !== environment.docker ||
      failedUnits.join("\n") !== environment.failedUnits.join("\n");
    if (!changed) return environment;
    const refreshed = await transitions.transition(environment.id, (current) =>
      current.version === environment.version ? { patch: { runtime, systemd, failedUnits, docker } } : undefined,
    );
    return refreshed?.after;
  }
}
