/**
 * What a user does to environments: create, start, rebuild, stop, delete.
 * Each checks the action against the state it finds (a 409 naming the state
 * otherwise), moves to the action's first state through the transitions, and
 * records itself in the audit log. Start, rebuild and create hand the work to
 * the build runner; stop and delete abort a build that is running.
 *
 * Concurrency: one in-process lock per environment serializes user actions;
 * the store's compare-and-set keeps other replicas (and this process's own
 * background builds, which never take the lock) from losing a change.
 */

import type { Logger } from "pino";
import type { CreateEnvironmentRequest } from "../../api/contract.js";
import {
  assertActionAllowed,
  type Environment,
  type EnvironmentAction,
  type EnvironmentSpec,
  resolveSpec,
} from "../../core/environment.js";
import { CvmError, invalid, notFound } from "../../core/errors.js";
import { isImageReference, parseImageReference } from "../../core/image-reference.js";
import { resolveRuntime } from "../../core/isolation-runtime.js";
import type { Provider } from "../../core/provider.js";
import { checkQuotas, heldToQuotas, quotaUsage } from "../../core/quotas.js";
import type { InfrastructureSettings } from "../../core/settings.js";
import type { EnvironmentPatch, Store } from "../../core/store.js";
import { newId } from "../../store/ids.js";
import type { Actor, AuditLog } from "../audit-log.js";
import type { EventBus } from "../event-bus.js";
import type { KeyedMutex } from "../keyed-mutex.js";
import type { WarmPools } from "../pools.js";
import type { SettingsService } from "../settings-service.js";
import { canSee, type EnvironmentAccess } from "./access.js";
import type { BuildOptions, BuildRunner } from "./build-runner.js";
import type { EnvironmentTransitions, Transitioned } from "./transition.js";
import type { WorkloadChanges } from "./workload-changes.js";

export interface EnvironmentActionsOptions {
  store: Store;
  provider: Provider;
  settings: SettingsService;
  audit: AuditLog;
  bus: EventBus;
  logger: Logger;
  access: EnvironmentAccess;
  transitions: EnvironmentTransitions;
  runner: BuildRunner;
  mutex: KeyedMutex;
  pools?: WarmPools;
  /** The provider's stop and removal, bounded. */
  workloads: WorkloadChanges;
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The reason a delete that keeps the home volume moves with, so a server finishing it after a crash keeps it too. */
export const keepingHome = "keeping its home";

/** The environment as the audit log keeps it: without the timeline, which the log itself replaces. */
function auditView(environment: Environment | undefined) {
  if (!environment) return null;
  const { timeline: _timeline, ...rest } = environment;
  return rest;
}

export class EnvironmentActions {
  constructor(private readonly deps: EnvironmentActionsOptions) {}

  /**
   * Runs `work` after checking the actor's quotas against what `adding` would
   * take, serialized per owner in this process so two requests cannot both
   * take the last of a quota (across replicas a race may pass one over).
   */
  private async withinQuotas<T>(
    actor: Actor,
    adding: { environments: number; cpu: number; memoryGiB: number; except?: string },
    work: () => Promise<T>,
  ): Promise<T> {
    if (!heldToQuotas(actor.role)) return work();
    return this.deps.mutex.run(`owner:${actor.id}`, async () => {
      const { quotas } = await this.deps.settings.get();
      const own = await this.deps.store.environments.list({ ownerId: actor.id });
      checkQuotas(quotas, quotaUsage(own, adding.except), adding);
      return work();
    });
  }

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
    return this.withinQuotas(actor, { environments: 1, cpu: spec.cpu, memoryGiB: spec.memoryGiB }, () =>
      this.insert(actor, spec, settings, registryCredentials),
    );
  }

  private async insert(
    actor: Actor,
    spec: EnvironmentSpec,
    settings: InfrastructureSettings,
    registryCredentials: CreateEnvironmentRequest["registryCredentials"],
  ): Promise<Environment> {
    // A warm CVM of the image and size, set aside now: the environment takes its id, and its build claims it.
    const pool = spec.cvm ? this.deps.pools?.reserve(spec, settings) : undefined;
    const at = new Date().toISOString();
    const inserted = await this.deps.store.environments
      .create(
        {
          ...spec,
          id: pool && "member" in pool ? pool.member.id : newId("env"),
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
      )
      .catch((error) => {
        this.deps.pools?.cancel(pool);
        throw error;
      });
    const created = await this.deps.transitions.firstBuild(inserted, `state: queued (created by ${actor.email})`);
    await this.deps.audit.record(actor, "environment.create", `environment/${created.id}`, null, auditView(created));
    this.deps.runner.launch(created, "create", { pool });
    return created;
  }

  start(actor: Actor, ref: string): Promise<Environment> {
    return this.beginBuild(actor, ref, "start", {});
  }

  /** Rebuild, from another image when one is given (a failed build's way out): the home is kept either way. */
  async rebuild(actor: Actor, ref: string, options: BuildOptions & { image?: string }): Promise<Environment> {
    const { image, ...build } = options;
    if (image === undefined) return this.beginBuild(actor, ref, "rebuild", build);
    const parsed = parseImageReference(image);
    if (!isImageReference(parsed)) throw invalid([{ field: "image", detail: parsed.problem }], "Invalid rebuild");
    return this.beginBuild(actor, ref, "rebuild", build, { image });
  }

  /** Stops; `reason` (idle stop) goes into the timeline and the build log, where a user's own stop says nothing. */
  async stop(actor: Actor, ref: string, reason?: string): Promise<Environment> {
    const { id } = await this.deps.access.find(actor, ref);
    return this.deps.mutex.run(id, async () => {
      const { before, after: stopping } = await this.begin(actor, id, "stop", reason ? { reason } : {});
      await this.deps.runner.abort(id, reason ?? "stopped by the user");
      try {
        await this.deps.workloads.stop(stopping);
      } catch (error) {
        await this.deps.transitions.fail(id, `stop failed: ${messageOf(error)}`, ["stopping"]);
        throw new CvmError("UNAVAILABLE", `Could not stop the environment: ${messageOf(error)}`, { cause: error });
      }
      const stopped = await this.deps.transitions.transition(id, () => ({ to: "stopped" }));
      if (!stopped) throw notFound("Environment");
      await this.deps.audit.record(
        actor,
        "environment.stop",
        `environment/${id}`,
        auditView(before),
        auditView(stopped.after),
      );
      return stopped.after;
    });
  }

  async remove(actor: Actor, ref: string, options: { keepHome: boolean }): Promise<void> {
    const { id } = await this.deps.access.find(actor, ref);
    await this.deps.mutex.run(id, async () => {
      const { before, after: deleting } = await this.begin(actor, id, "delete", {
        reason: options.keepHome ? keepingHome : undefined,
      });
      // Recorded as it begins: a server that dies halfway leaves the next to finish it, with the request audited.
      await this.deps.audit.record(actor, "environment.delete", `environment/${id}`, auditView(before), {
        keepHome: options.keepHome,
      });
      await this.deps.runner.abort(id, "deleted by the user");
      try {
        await this.deps.workloads.remove(deleting, { keepHome: options.keepHome });
      } catch (error) {
        await this.deps.transitions.fail(id, `delete failed: ${messageOf(error)}`, ["deleting"]);
        throw new CvmError("UNAVAILABLE", `Could not remove the environment's workload: ${messageOf(error)}`, {
          cause: error,
        });
      }
      await this.deps.store.environments.remove(id);
      this.deps.bus.publish({ type: "deleted", id, ownerId: before.ownerId });
    });
  }

  /** Start or rebuild: move to the action's state with a new build, then run the build in the background. */
  private async beginBuild(
    actor: Actor,
    ref: string,
    action: "start" | "rebuild",
    options: BuildOptions,
    patch?: EnvironmentPatch,
  ): Promise<Environment> {
    if (this.deps.runner.closing) throw new CvmError("UNAVAILABLE", "The server is shutting down");
    const found = await this.deps.access.find(actor, ref);
    const { id } = found;
    const adding = { environments: 0, cpu: found.cpu, memoryGiB: found.memoryGiB, except: id };
    // A member starts only their own environments; an admin starting a member's is not held to quotas.
    // The environment's lock first, then the owner's (create takes only the owner's): no two wait on each other.
    return this.deps.mutex.run(id, () =>
      this.withinQuotas(actor, adding, async () => {
        const { before, after } = await this.begin(actor, id, action, { newBuild: true, patch });
        await this.deps.audit.record(actor, `environment.${action}`, `environment/${id}`, auditView(before), {
          ...auditView(after),
          ...(action === "rebuild" ? { keepDockerData: options.keepDockerData ?? false } : {}),
        });
        this.deps.runner.launch(after, action, options);
        return after;
      }),
    );
  }

  /** Checks the action against the state it finds and moves to the action's first state. */
  private async begin(
    actor: Actor,
    id: string,
    action: EnvironmentAction,
    options: { newBuild?: boolean; reason?: string; patch?: EnvironmentPatch } = {},
  ): Promise<Transitioned> {
    const begun = await this.deps.transitions.transition(id, (current) => {
      if (!canSee(actor, current)) throw notFound("Environment");
      return { to: assertActionAllowed(action, current.state), ...options };
    });
    if (!begun) throw notFound("Environment");
    return begun;
  }
}
