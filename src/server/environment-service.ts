/**
 * Environments: who may see them, the user's actions on them, and the builds
 * that run in the background through the provider. Every state change goes
 * through one compare-and-set write that appends to the timeline, writes a
 * build-log line and tells the event bus.
 *
 * Concurrency: one in-process lock per environment serializes user actions;
 * the store's version check keeps other replicas (and this process's own
 * background builds, which never take the lock) from losing a change.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { CreateEnvironmentRequest, ReconcileReport } from "../api/contract.js";
import type { Build, BuildLogLine } from "../core/build.js";
import {
  assertActionAllowed,
  buildingStates,
  type Environment,
  type EnvironmentAction,
  type EnvironmentState,
  resolveSpec,
} from "../core/environment.js";
import { CvmError, notFound } from "../core/errors.js";
import { resolveRuntime } from "../core/isolation-runtime.js";
import type { BuildContext, Observation, Provider } from "../core/provider.js";
import { can } from "../core/roles.js";
import type { EnvironmentPatch, Store } from "../core/store.js";
import { newId } from "../store/ids.js";
import type { Actor, AuditLog } from "./audit-log.js";
import type { EventBus } from "./event-bus.js";
import { KeyedMutex } from "./keyed-mutex.js";
import type { ServerMetrics } from "./metrics.js";
import type { SettingsService } from "./settings-service.js";

type Outcome = NonNullable<Build["outcome"]>;
type BuildKind = "create" | "start" | "rebuild";

interface LiveBuild {
  buildId: string;
  controller: AbortController;
  done: Promise<void>;
}

export interface EnvironmentQuery {
  owner?: string;
  state?: EnvironmentState;
  kind?: "cvm" | "standard";
  name?: string;
}

export interface EnvironmentServiceOptions {
  store: Store;
  provider: Provider;
  settings: SettingsService;
  audit: AuditLog;
  bus: EventBus;
  metrics: ServerMetrics;
  logger: Logger;
  /** How long systemd gets to shut down on stop. */
  stopTimeoutSeconds?: number;
}

/** Timelines keep their most recent entries; the audit log keeps the rest. */
const timelineLimit = 100;
/** How long a GET waits for the provider's fresh observation before answering with the stored one. */
const observeTimeoutMs = 1500;
/** How long stop and delete wait for an aborted build to wind down. */
const abortWaitMs = 30_000;
const serverStopping = "the server is shutting down";
/** With several replicas (PostgreSQL), a build nobody has advanced for this long is taken as abandoned. */
const abandonedAfterMs = 10 * 60_000;
/** The states reconcile may find abandoned: mid-build, mid-stop, mid-delete, or running without a workload. */
const reconcilable: readonly EnvironmentState[] = [...buildingStates, "stopping", "deleting", "running"];

const now = () => new Date().toISOString();
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The outcome a build ends with when someone else moved its environment on. */
const outcomeOfState: Partial<Record<EnvironmentState, Outcome>> = {
  stopping: "stopped",
  stopped: "stopped",
  deleting: "deleted",
  deleted: "deleted",
  running: "running",
};

/** The environment as the audit log keeps it: without the timeline, which the log itself replaces. */
function auditView(environment: Environment | undefined) {
  if (!environment) return null;
  const { timeline: _timeline, ...rest } = environment;
  return rest;
}

export class EnvironmentService {
  private readonly mutex = new KeyedMutex();
  private readonly live = new Map<string, LiveBuild>();
  private closing = false;

  constructor(private readonly deps: EnvironmentServiceOptions) {}

  // Reading

  canSee(actor: Actor, environment: Environment): boolean {
    return environment.ownerId === actor.id || can(actor.role, "environments:all");
  }

  /** An id, or the name of one of the caller's own environments; another's is a 404, never a 403. */
  async find(actor: Actor, ref: string): Promise<Environment> {
    const { environments } = this.deps.store;
    const byId = await environments.get(ref);
    if (byId && this.canSee(actor, byId)) return byId;
    const byName = await environments.getByOwnerAndName(actor.id, ref);
    if (byName) return byName;
    throw notFound(`Environment "${ref}"`);
  }

  async list(actor: Actor, query: EnvironmentQuery): Promise<Environment[]> {
    const owner = query.owner ?? "me";
    const ownerId = owner === "me" ? actor.id : owner === "all" ? undefined : owner;
    if (ownerId !== actor.id && !can(actor.role, "environments:all")) {
      throw new CvmError("FORBIDDEN", "Only site admins and site managers may list others' environments");
    }
    return this.deps.store.environments.list({
      ownerId,
      state: query.state,
      cvm: query.kind === undefined ? undefined : query.kind === "cvm",
      name: query.name,
    });
  }

  /** One environment; a running one is observed first, so systemd's and Docker's status are fresh. */
  async show(actor: Actor, ref: string): Promise<Environment> {
    const environment = await this.find(actor, ref);
    if (environment.state !== "running" || this.live.has(environment.id)) return environment;
    const observation = await Promise.race([
      this.deps.provider.observe(environment).catch((error) => {
        this.deps.logger.warn({ err: error, environmentId: environment.id }, "observe failed");
        return undefined;
      }),
      sleep(observeTimeoutMs, undefined),
    ]);
    if (!observation) return environment;
    return (await this.applyObservation(environment, observation)) ?? environment;
  }

  async builds(actor: Actor, ref: string): Promise<Build[]> {
    const environment = await this.find(actor, ref);
    return this.deps.store.builds.listForEnvironment(environment.id);
  }

  /** The build a log request means: an id of this environment's, or its current one. */
  async buildOf(actor: Actor, ref: string, buildId?: string): Promise<Build> {
    const environment = await this.find(actor, ref);
    const id = !buildId || buildId === "latest" ? environment.buildId : buildId;
    const build = id ? await this.deps.store.builds.get(id) : undefined;
    if (!build || build.environmentId !== environment.id) throw notFound(`Build "${buildId ?? "latest"}"`);
    return build;
  }

  // Actions

  async create(actor: Actor, request: CreateEnvironmentRequest): Promise<Environment> {
    const settings = await this.deps.settings.get();
    const { registryCredentials, ...requested } = request;
    const spec = resolveSpec(requested, settings.limits);
    if (spec.cvm && !settings.cvmEnabled) {
      throw new CvmError(
        "CONFLICT",
        "CVMs are disabled: a site admin must turn on cvmEnabled (Manage > Admin > Infrastructure) before creating a CVM",
        {
          detail: "Create a standard environment instead (cvm: false), or ask a site admin to enable CVMs.",
          validations: [{ field: "cvm", detail: "CVMs are disabled on this installation (cvmEnabled is off)" }],
        },
      );
    }
    const at = now();
    const { store } = this.deps;
    const inserted = await store.environments.create(
      {
        ...spec,
        id: newId("env"),
        ownerId: actor.id,
        ownerEmail: actor.email,
        state: "queued",
        runtime: spec.cvm ? resolveRuntime(settings.runtime) : "none",
        systemd: "unknown",
        failedUnits: [],
        docker: "unknown",
        timeline: [{ state: "queued", at }],
        createdAt: at,
        updatedAt: at,
        version: 1,
      },
      registryCredentials,
    );
    const build = await store.builds.create(inserted.id, at);
    await this.appendLog(build.id, `state: queued (created by ${actor.email})`);
    const created = await this.write(inserted, { buildId: build.id });
    if (!created) throw new CvmError("CONFLICT", "The environment changed while it was being created; try again");
    await this.deps.audit.record(actor, "environment.create", `environment/${created.id}`, null, auditView(created));
    this.launch(created, build.id, "create", {});
    return created;
  }

  async start(actor: Actor, ref: string): Promise<Environment> {
    return this.beginBuild(actor, ref, "start", {});
  }

  async rebuild(actor: Actor, ref: string, options: { keepDockerData?: boolean }): Promise<Environment> {
    return this.beginBuild(actor, ref, "rebuild", options);
  }

  async stop(actor: Actor, ref: string): Promise<Environment> {
    const { id } = await this.find(actor, ref);
    return this.mutex.run(id, async () => {
      const [before, stopping] = await this.beginAction(actor, id, "stop");
      await this.abortBuild(id, "stopped by the user");
      try {
        await this.deps.provider.stop(stopping, this.deps.stopTimeoutSeconds ?? 20);
      } catch (error) {
        await this.settleFailure(id, `stop failed: ${messageOf(error)}`, ["stopping"]);
        throw new CvmError("UNAVAILABLE", `Could not stop the environment: ${messageOf(error)}`, { cause: error });
      }
      const stopped = await this.moveTo(id, "stopped");
      await this.deps.audit.record(
        actor,
        "environment.stop",
        `environment/${id}`,
        auditView(before),
        auditView(stopped),
      );
      return stopped;
    });
  }

  async remove(actor: Actor, ref: string, options: { keepHome: boolean }): Promise<void> {
    const { id } = await this.find(actor, ref);
    await this.mutex.run(id, async () => {
      const [before, deleting] = await this.beginAction(actor, id, "delete");
      await this.abortBuild(id, "deleted by the user");
      try {
        await this.deps.provider.remove(deleting, { keepHome: options.keepHome });
      } catch (error) {
        await this.settleFailure(id, `delete failed: ${messageOf(error)}`, ["deleting"]);
        throw new CvmError("UNAVAILABLE", `Could not remove the environment's workload: ${messageOf(error)}`, {
          cause: error,
        });
      }
      await this.deps.store.environments.remove(id);
      this.deps.bus.publish({ type: "deleted", id, ownerId: before.ownerId });
      await this.deps.audit.record(actor, "environment.delete", `environment/${id}`, auditView(before), {
        keepHome: options.keepHome,
      });
    });
  }

  /**
   * Marks environments whose workload vanished, and builds no process is
   * running any more, as failed; reports (and optionally removes) labeled
   * workloads that have no environment.
   */
  async reconcile(options: { removeOrphans: boolean }): Promise<ReconcileReport> {
    const { store, provider, logger } = this.deps;
    const workloads = await provider.listWorkloads();
    const withWorkload = new Set(workloads.map((w) => w.environmentId));
    const report: ReconcileReport = { vanished: [], orphans: [] };
    const environments = await store.environments.list({});
    for (const listed of environments) {
      if (this.live.has(listed.id)) continue;
      await this.mutex.run(listed.id, async () => {
        const environment = await store.environments.get(listed.id);
        if (!environment || this.live.has(environment.id)) return;
        const hasWorkload = withWorkload.has(environment.id);
        const reason = await this.reconcileReason(environment, hasWorkload);
        if (!reason) return;
        if (this.resumable(environment, hasWorkload) && environment.buildId) {
          await this.appendLog(
            environment.buildId,
            `build resumed after ${reason}: continuing with the workload found`,
          );
          this.launch(environment, environment.buildId, "create", {});
          return;
        }
        await this.settleFailure(environment.id, reason, reconcilable);
        report.vanished.push({ id: environment.id, name: environment.name, reason });
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
    if (report.vanished.length || report.orphans.length) logger.info({ report }, "reconciled");
    return report;
  }

  /** Aborts every build this process runs and waits for them to record their end. */
  async close(): Promise<void> {
    this.closing = true;
    const live = [...this.live.values()];
    for (const build of live) build.controller.abort(new CvmError("UNAVAILABLE", serverStopping));
    await Promise.race([Promise.allSettled(live.map((b) => b.done)), sleep(abortWaitMs)]);
  }

  // Internals

  /**
   * Why reconcile fails an environment no build of this process is working on,
   * or undefined to leave it. When this server is the store's only writer,
   * an unfinished build is an interrupted one; with a shared store another replica
   * may be running it, so only a build without progress for a while counts.
   */
  private async reconcileReason(environment: Environment, hasWorkload: boolean): Promise<string | undefined> {
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
      return `workload vanished: no ${this.deps.provider.name === "docker" ? "container" : "Pod"} for this environment`;
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

  /** Start or rebuild: move to the action's state with a new build, then run the build in the background. */
  private async beginBuild(
    actor: Actor,
    ref: string,
    action: "start" | "rebuild",
    options: { keepDockerData?: boolean },
  ): Promise<Environment> {
    if (this.closing) throw new CvmError("UNAVAILABLE", "The server is shutting down");
    const { id } = await this.find(actor, ref);
    return this.mutex.run(id, async () => {
      const [before, moved] = await this.beginAction(actor, id, action, {}, false);
      // The state is ours now (compare-and-set won), so the build exists only for an action that began:
      // refused actions, here or on another replica, leave no build behind.
      const build = await this.deps.store.builds.create(id, now());
      await this.appendLog(build.id, `state: ${before.state} → ${moved.state}`, moved.timeline.at(-1)?.at);
      const after = await this.attachBuild(id, build.id);
      await this.deps.audit.record(actor, `environment.${action}`, `environment/${id}`, auditView(before), {
        ...auditView(after),
        ...(action === "rebuild" ? { keepDockerData: options.keepDockerData ?? false } : {}),
      });
      this.launch(after, build.id, action === "start" ? "start" : "rebuild", options);
      return after;
    });
  }

  /** Checks the action against the current state and moves to its first state; retried when a build wrote meanwhile. */
  private async beginAction(
    actor: Actor,
    id: string,
    action: EnvironmentAction,
    extra: EnvironmentPatch = {},
    log = true,
  ): Promise<[Environment, Environment]> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.deps.store.environments.get(id);
      if (!current || !this.canSee(actor, current)) throw notFound("Environment");
      const to = assertActionAllowed(action, current.state);
      const moved = await this.move(current, to, undefined, extra, log);
      if (moved) return [current, moved];
    }
    throw new CvmError("CONFLICT", "The environment is changing too fast to act on; try again");
  }

  /** The one write of a state change: timeline, log line, event. Undefined when another writer got there first. */
  private async move(
    environment: Environment,
    to: EnvironmentState,
    reason?: string,
    extra: EnvironmentPatch = {},
    log = true,
  ): Promise<Environment | undefined> {
    const at = now();
    const timeline = [...environment.timeline, reason ? { state: to, at, reason } : { state: to, at }].slice(
      -timelineLimit,
    );
    const updated = await this.write(environment, { ...extra, state: to, stateReason: reason, timeline });
    const buildId = extra.buildId ?? environment.buildId;
    if (updated && buildId && log) {
      await this.appendLog(buildId, `state: ${environment.state} → ${to}${reason ? ` (${reason})` : ""}`, at);
    }
    return updated;
  }

  /** Makes `buildId` the environment's current build, whatever else changed meanwhile. */
  private async attachBuild(id: string, buildId: string): Promise<Environment> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.deps.store.environments.get(id);
      if (!current) throw notFound("Environment");
      const updated = await this.write(current, { buildId });
      if (updated) return updated;
    }
    throw new CvmError("CONFLICT", "The environment is changing too fast to act on; try again");
  }

  /** Moves to `to` from whatever the state is now, retrying on concurrent writes. */
  private async moveTo(id: string, to: EnvironmentState, reason?: string): Promise<Environment> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.deps.store.environments.get(id);
      if (!current) throw notFound("Environment");
      const moved = await this.move(current, to, reason);
      if (moved) return moved;
    }
    throw new CvmError("CONFLICT", "The environment is changing too fast to act on; try again");
  }

  private async write(environment: Environment, patch: EnvironmentPatch): Promise<Environment | undefined> {
    const updated = await this.deps.store.environments.update(environment.id, environment.version, patch);
    if (updated) this.deps.bus.publish({ type: "environment", environment: updated });
    return updated;
  }

  private async appendLog(buildId: string, text: string, at = now()): Promise<BuildLogLine> {
    const line = await this.deps.store.builds.appendLog(buildId, text, at);
    this.deps.bus.buildActivity(buildId);
    return line;
  }

  private async abortBuild(id: string, why: string): Promise<void> {
    const live = this.live.get(id);
    if (!live) return;
    live.controller.abort(new CvmError("CONFLICT", why));
    await Promise.race([live.done, sleep(abortWaitMs)]);
  }

  private launch(environment: Environment, buildId: string, kind: BuildKind, options: { keepDockerData?: boolean }) {
    const controller = new AbortController();
    const done = this.runBuild(environment.id, buildId, kind, controller.signal, options)
      .catch((error) => this.deps.logger.error({ err: error, environmentId: environment.id, buildId }, "build crashed"))
      .finally(() => {
        if (this.live.get(environment.id)?.buildId === buildId) this.live.delete(environment.id);
      });
    this.live.set(environment.id, { buildId, controller, done });
  }

  private async runBuild(
    id: string,
    buildId: string,
    kind: BuildKind,
    signal: AbortSignal,
    options: { keepDockerData?: boolean },
  ): Promise<void> {
    const { store, provider, logger, metrics, bus } = this.deps;
    const started = performance.now();
    const log = (text: string) => this.appendLog(buildId, text).then(() => undefined);
    let outcome: Outcome = "failed";
    let suspended = false;
    try {
      const context: BuildContext = {
        settings: await this.deps.settings.get(),
        credentials: await store.environments.registryCredentials(id),
        log,
        enter: (state) => this.advance(id, state, signal),
        signal,
      };
      const environment = await store.environments.get(id);
      if (!environment) throw new CvmError("NOT_FOUND", "the environment is gone");
      if (kind === "rebuild") {
        await log(`discarding the old workload${options.keepDockerData ? " (keeping the inner Docker data)" : ""}`);
        await provider.discard(environment, { keepDockerData: options.keepDockerData ?? false });
      }
      const observation =
        kind === "start" ? await provider.start(environment, context) : await provider.build(environment, context);
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
        outcome = await this.settleFailure(id, signal.aborted ? `interrupted: ${reason}` : reason, buildingStates);
      }
    } finally {
      if (!suspended) {
        await store.builds.finish(buildId, outcome, now()).catch((error) => {
          logger.error({ err: error, buildId }, "could not record the build's end");
        });
      }
      metrics.buildDuration.observe({ outcome }, (performance.now() - started) / 1000);
      bus.buildActivity(buildId, outcome);
    }
  }

  /** An interrupted build whose workload is still there, on a provider that can pick it up again. */
  private resumable(environment: Environment, hasWorkload: boolean): boolean {
    return Boolean(this.deps.provider.resumesBuilds) && hasWorkload && buildingStates.includes(environment.state);
  }

  /**
   * ctx.enter: moves between build states; refuses once someone else has moved
   * the environment out of them. A build never moves backwards: entering a
   * state it is already past (a resumed build retracing its steps) changes nothing.
   */
  private async advance(id: string, state: EnvironmentState, signal: AbortSignal): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      signal.throwIfAborted();
      const current = await this.deps.store.environments.get(id);
      if (!current) throw new CvmError("NOT_FOUND", "the environment is gone");
      if (current.state === state) return;
      if (buildingStates.indexOf(state) < buildingStates.indexOf(current.state)) return;
      if (!buildingStates.includes(current.state)) {
        throw new CvmError("CONFLICT", `the environment is ${current.state} now`);
      }
      if (await this.move(current, state)) return;
    }
    throw new CvmError("CONFLICT", "the environment is changing too fast to build");
  }

  private async settleSuccess(id: string, observation: Observation): Promise<Outcome> {
    if (!observation.running) {
      return this.settleFailure(
        id,
        observation.reason ?? "the workload is not running after its build",
        buildingStates,
      );
    }
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.deps.store.environments.get(id);
      if (!current) return "deleted";
      if (!buildingStates.includes(current.state)) return outcomeOfState[current.state] ?? "failed";
      const moved = await this.move(current, "running", undefined, {
        runtime: observation.runtime,
        systemd: observation.systemd,
        failedUnits: observation.failedUnits,
        docker: observation.docker,
      });
      if (moved) return "running";
    }
    return "failed";
  }

  /**
   * Marks the environment failed with the reason if it is still in one of
   * `from`; otherwise someone moved it on (stopped, deleted) and that stands.
   */
  private async settleFailure(id: string, reason: string, from: readonly EnvironmentState[]): Promise<Outcome> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.deps.store.environments.get(id);
      if (!current) return "deleted";
      if (!from.includes(current.state)) return outcomeOfState[current.state] ?? "failed";
      if (await this.move(current, "failed", reason)) return "failed";
    }
    return "failed";
  }

  private async outcomeNow(id: string): Promise<Outcome> {
    const current = await this.deps.store.environments.get(id);
    return current ? (outcomeOfState[current.state] ?? "failed") : "deleted";
  }

  private async applyObservation(environment: Environment, observation: Observation): Promise<Environment | undefined> {
    if (!observation.exists || !observation.running) {
      const reason = observation.exists
        ? `workload stopped: ${observation.reason ?? "it is not running"}`
        : `workload vanished: ${observation.reason ?? "it no longer exists"}`;
      return this.mutex.run(environment.id, async () => {
        const current = await this.deps.store.environments.get(environment.id);
        if (current?.state !== "running" || this.live.has(environment.id)) return current;
        return (await this.move(current, "failed", reason)) ?? current;
      });
    }
    const fresh = {
      runtime: observation.runtime,
      systemd: observation.systemd,
      failedUnits: observation.failedUnits,
      docker: observation.docker,
    };
    const changed =
      fresh.runtime !== environment.runtime ||
      fresh.systemd !== environment.systemd ||
      fresh.docker !== environment.docker ||
      fresh.failedUnits.join("\n") !== environment.failedUnits.join("\n");
    if (!changed) return environment;
    return this.write(environment, fresh);
  }
}
