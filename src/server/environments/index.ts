/**
 * Environments, as the API and the terminal see them: one service over the
 * parts that do the work. `access` decides who may see what, `actions` are
 * the user's requests, `build-runner` runs builds in the background,
 * `reconciler` brings the store in line with the provider, and every write
 * of an environment's state goes through `transition`.
 */

import type { Logger } from "pino";
import type { CreateEnvironmentRequest, ReconcileReport } from "../../api/contract.js";
import type { Page } from "../../core/audit.js";
import type { Build } from "../../core/build.js";
import type { Environment, EnvironmentSummary } from "../../core/environment.js";
import type { Provider } from "../../core/provider.js";
import type { Store } from "../../core/store.js";
import type { Actor, AuditLog } from "../audit-log.js";
import type { EventBus } from "../event-bus.js";
import { KeyedMutex } from "../keyed-mutex.js";
import type { ServerMetrics } from "../metrics.js";
import { WarmPools, type WarmPoolsOptions } from "../pools.js";
import type { SettingsService } from "../settings-service.js";
import { canSee, EnvironmentAccess, type EnvironmentQuery } from "./access.js";
import { EnvironmentActions } from "./actions.js";
import { BuildRunner } from "./build-runner.js";
import { Reconciler } from "./reconciler.js";
import { EnvironmentTransitions } from "./transition.js";
import { WorkloadChanges } from "./workload-changes.js";

export type { EnvironmentQuery } from "./access.js";

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
  /** How long a stop or removal may take before it counts as failed (workload-changes.ts). */
  workloadChangeTimeoutMs?: number;
  /** How the warm pools fill (tests make them quicker). */
  pools?: Pick<WarmPoolsOptions, "fillConcurrency" | "intervalMs" | "versionCheckMs">;
}

export class EnvironmentService {
  private readonly access: EnvironmentAccess;
  private readonly actions: EnvironmentActions;
  private readonly runner: BuildRunner;
  private readonly reconciler: Reconciler;

  /** The warm pools, where the provider keeps them. */
  readonly pools?: WarmPools;

  constructor(deps: EnvironmentServiceOptions) {
    const mutex = new KeyedMutex();
    const transitions = new EnvironmentTransitions(deps);
    const pools = deps.provider.pool ? new WarmPools({ ...deps, ...deps.pools }) : undefined;
    this.pools = pools;
    this.access = new EnvironmentAccess(deps.store);
    const workloads = new WorkloadChanges(deps);
    this.runner = new BuildRunner({ ...deps, transitions, pools, workloads });
    this.reconciler = new Reconciler({ ...deps, transitions, runner: this.runner, mutex, workloads });
    this.actions = new EnvironmentActions({
      ...deps,
      access: this.access,
      transitions,
      runner: this.runner,
      mutex,
      pools,
      workloads,
    });
  }

  canSee(actor: Actor, environment: Environment): boolean {
    return canSee(actor, environment);
  }

  /** An id, or the name of one of the caller's own environments; another's is a 404, never a 403. */
  find(actor: Actor, ref: string): Promise<Environment> {
    return this.access.find(actor, ref);
  }

  /** A page of the environments the actor may see, newest first. */
  list(actor: Actor, query: EnvironmentQuery): Promise<Page<EnvironmentSummary>> {
    return this.access.list(actor, query);
  }

  /** One environment; a running one is observed first, so systemd's and Docker's status are fresh. */
  async show(actor: Actor, ref: string): Promise<Environment> {
    return this.reconciler.refresh(await this.access.find(actor, ref));
  }

  builds(actor: Actor, ref: string): Promise<Build[]> {
    return this.access.builds(actor, ref);
  }

  /** The build a log request means: an id of this environment's, or its current one. */
  buildOf(actor: Actor, ref: string, buildId?: string): Promise<Build> {
    return this.access.buildOf(actor, ref, buildId);
  }

  create(actor: Actor, request: CreateEnvironmentRequest): Promise<Environment> {
    return this.actions.create(actor, request);
  }

  start(actor: Actor, ref: string): Promise<Environment> {
    return this.actions.start(actor, ref);
  }

  rebuild(actor: Actor, ref: string, options: { keepDockerData?: boolean; image?: string }): Promise<Environment> {
    return this.actions.rebuild(actor, ref, options);
  }

  /** Stops; a `reason` (idle stop) is written to the timeline and the build log. */
  stop(actor: Actor, ref: string, reason?: string): Promise<Environment> {
    return this.actions.stop(actor, ref, reason);
  }

  remove(actor: Actor, ref: string, options: { keepHome: boolean }): Promise<void> {
    return this.actions.remove(actor, ref, options);
  }

  /**
   * Marks environments whose workload vanished, and builds no process is
   * running any more, as failed (or resumes them where the provider can);
   * reports (and optionally removes) labeled workloads that have no environment.
   */
  reconcile(options: { removeOrphans: boolean }): Promise<ReconcileReport> {
    return this.reconciler.reconcile(options);
  }

  /** Aborts every build this process runs and waits for them to record their end; the pools stop filling. */
  async close(): Promise<void> {
    await this.runner.close();
    await this.pools?.close();
  }
}
