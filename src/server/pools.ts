/**
 * This server's warm pools: keeps each pool an admin set (the settings'
 * `pools`) filled with booted CVMs through the provider's pool, reserves one
 * for a CVM create that fits, claims it in that create's build, and refills in
 * the background. What to fill and drain is core/warm-pool.ts's plan; this
 * module carries it out, one pass at a time, on changes and on a timer.
 *
 * A member is reserved when the create is accepted (in memory: the docker
 * provider's pools belong to the one server on its machine) and claimed by
 * the build; a claim that cannot go ahead (the image changed in its registry,
 * the member broke) drains the member and says so, and the build goes cold.
 */

import type { Logger } from "pino";
import type { PoolsStatus } from "../api/contract.js";
import { within } from "../core/deadline.js";
import type { Environment, EnvironmentSpec } from "../core/environment.js";
import type { Validation } from "../core/errors.js";
import type { BuildContext, Observation, PoolCapacity, Provider, WorkloadPool } from "../core/provider.js";
import type { InfrastructureSettings } from "../core/settings.js";
import type { Store } from "../core/store.js";
import {
  capacityProblems,
  newMember,
  type PoolMember,
  planPools,
  poolKey,
  poolsFor,
  settingsChange,
  type WarmPool,
} from "../core/warm-pool.js";
import { newId } from "../store/ids.js";
import type { SettingsService } from "./settings-service.js";

export type PoolReservation = { member: PoolMember } | { miss: string };

export interface WarmPoolsOptions {
  provider: Provider;
  store: Store;
  settings: SettingsService;
  logger: Logger;
  /** Members built at once; each fill is a CVM's build (default 1: the machine is shared). */
  fillConcurrency?: number;
  /** Between passes when nothing asks for one (default 15 s). */
  intervalMs?: number;
  /** How often a pool's image is looked up in its registry (default 60 s). */
  versionCheckMs?: number;
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** `work`'s answer, or undefined when it fails or takes longer than `ms`. */
const answerOrNothing = <T>(work: Promise<T>, ms: number) =>
  within(
    work.catch(() => undefined),
    ms,
  );

export class WarmPools {
  private readonly pool?: WorkloadPool;
  private readonly members = new Map<string, PoolMember>();
  private readonly reserved = new Set<string>();
  private readonly fills = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly busy = new Set<Promise<unknown>>();
  private readonly versions = new Map<string, { version?: string; checkedAt: number }>();
  private started?: Promise<void>;
  private pass?: Promise<void>;
  private again = false;
  private timer?: NodeJS.Timeout;
  private syncedAt = Date.now();
  private closed = false;

  constructor(private readonly deps: WarmPoolsOptions) {
    this.pool = deps.provider.pool;
    deps.settings.onChange(() => this.kick());
    deps.settings.addValidator((after, before) => this.capacityProblems(after, before));
  }

  private capacityKnown?: { capacity?: PoolCapacity; at: number };

  /** The machine the members run on, asked at most once a minute; undefined when the provider cannot say. */
  async capacity(): Promise<PoolCapacity | undefined> {
    if (!this.pool?.capacity) return undefined;
    if (this.capacityKnown && Date.now() - this.capacityKnown.at < 60_000) return this.capacityKnown.capacity;
    const capacity = await answerOrNothing(this.pool.capacity(), 5000);
    this.capacityKnown = { capacity, at: Date.now() };
    return capacity;
  }

  /** Pooled CVMs count against capacity: pools changed to hold more than the machine has are refused. */
  private async capacityProblems(after: InfrastructureSettings, before: InfrastructureSettings): Promise<Validation[]> {
    if (JSON.stringify(after.pools) === JSON.stringify(before.pools)) return [];
    const capacity = await this.capacity();
    return capacity ? capacityProblems(after.pools, capacity) : [];
  }

  /**
   * Adopts the members the provider holds (a member a crash left half-built
   * is drained; one whose id an environment took, reserved by a create whose
   * server stopped before the claim, is that environment's and is only
   * forgotten) and begins filling.
   */
  start(): Promise<void> {
    this.started ??= (async () => {
      if (!this.pool) return;
      for (const member of await this.pool.members()) {
        if (await this.deps.store.environments.get(member.id)) {
          await this.pool.forget(member);
          continue;
        }
        this.members.set(
          member.id,
          member.state === "filling" ? { ...member, state: "failed", reason: "its build was interrupted" } : member,
        );
      }
      this.timer = setInterval(() => this.kick(), this.deps.intervalMs ?? 15_000);
      this.timer.unref();
      this.kick();
    })().catch((error) => this.deps.logger.error({ err: error }, "could not adopt the warm pools' members"));
    return this.started;
  }

  /**
   * A ready member of a pool the request fits, the closest in size first and
   * the longest ready within a pool, set aside for this create; or why none.
   */
  reserve(spec: EnvironmentSpec, settings: InfrastructureSettings): PoolReservation {
    if (!this.pool) return { miss: `the ${this.deps.provider.name} provider keeps no warm pools` };
    const fit = poolsFor(spec, settings.cvmEnabled ? settings.pools : []);
    if ("miss" in fit) return fit;
    let changed: string | undefined;
    for (const pool of fit.pools) {
      const key = poolKey(pool);
      const ready = [...this.members.values()]
        .filter((m) => m.pool === key && m.state === "ready" && !this.reserved.has(m.id))
        .filter((m) => {
          const change = settingsChange(m, settings);
          changed ??= change;
          return !change;
        })
        .sort((a, b) => (a.readyAt ?? "").localeCompare(b.readyAt ?? ""));
      if (ready[0]) {
        this.reserved.add(ready[0].id);
        return { member: ready[0] };
      }
    }
    if (changed) {
      // The next pass drains them and builds members under the settings of now.
      this.kick();
      return { miss: `the warm pool ${poolKey(fit.pools[0])} holds only CVMs built under other settings (${changed})` };
    }
    const filling = [...this.members.values()].filter(
      (m) => m.state === "filling" && fit.pools.some((p) => poolKey(p) === m.pool),
    ).length;
    return {
      miss: `the warm pool ${poolKey(fit.pools[0])} has no ready CVM${filling > 0 ? ` (${filling} being built)` : ""}`,
    };
  }

  /** Gives a reserved member back when its create went no further (the name was taken). */
  cancel(reservation: PoolReservation | undefined): void {
    if (reservation && "member" in reservation) this.reserved.delete(reservation.member.id);
  }

  /**
   * The build of a create that reserved: claims the member, or says in the
   * build log why not and answers undefined, and the build goes cold. The
   * image's registry is asked while the claim runs; if the image changed
   * since the member was built, the claimed CVM is drained and the build goes
   * cold all the same. A member that cannot be claimed is drained first: the
   * cold build makes its CVM under the same id.
   */
  async claim(
    environment: Environment,
    reservation: PoolReservation,
    context: BuildContext,
  ): Promise<Observation | undefined> {
    if ("miss" in reservation || !this.pool) {
      await context.log(`pool: ${"miss" in reservation ? reservation.miss : "no warm pools here"}; building cold`);
      return undefined;
    }
    const { member } = reservation;
    const pool = this.pool;
    const current = answerOrNothing(pool.imageVersion(member.image, context.credentials), 2000);
    try {
      const age = member.readyAt ? ((Date.now() - Date.parse(member.readyAt)) / 1000).toFixed(0) : "?";
      await context.log(`pool: claiming a warm CVM of ${member.pool}, ready for ${age} s`);
      this.members.delete(member.id);
      const observation = await pool.claim(member, environment, context);
      const version = await current;
      if (version) this.versions.set(member.image, { version, checkedAt: Date.now() });
      if (version && member.imageVersion && version !== member.imageVersion) {
        await context.log(`pool: ${member.image} changed in its registry since the warm CVM was built; building cold`);
        await this.drainNow(member, "its image changed in its registry");
        this.kick();
        return undefined;
      }
      return observation;
    } catch (error) {
      context.signal.throwIfAborted();
      await context.log(`pool: the claim failed (${messageOf(error)}); building cold`);
      await this.drainNow(member, `its claim failed: ${messageOf(error)}`).catch(() => undefined);
      return undefined;
    } finally {
      this.members.delete(member.id);
      this.reserved.delete(member.id);
      this.kick();
    }
  }

  /** The pools as set, with their members now, and what the members hold. */
  async status(): Promise<PoolsStatus> {
    const settings = await this.deps.settings.get();
    const members = [...this.members.values()];
    const count = (key: string, state: PoolMember["state"]) =>
      members.filter((m) => m.pool === key && m.state === state).length;
    const live = members.filter((m) => m.state !== "failed");
    const capacity = await this.capacity();
    return {
      supported: this.pool !== undefined,
      ...(capacity ? { capacity: { cpu: capacity.cpu, memoryGiB: Math.round(capacity.memoryGiB * 100) / 100 } } : {}),
      pools: settings.pools.map((pool) => {
        const key = poolKey(pool);
        return {
          ...pool,
          key,
          ready: count(key, "ready"),
          filling: count(key, "filling"),
          failed: count(key, "failed"),
        };
      }),
      members,
      held: {
        cvms: live.length,
        cpu: live.reduce((sum, m) => sum + m.cpu, 0),
        memoryGiB: live.reduce((sum, m) => sum + m.memoryGiB, 0),
        diskGiB: live.reduce((sum, m) => sum + m.diskGiB, 0),
      },
    };
  }

  /** Asks for a pass: right away, or after the one running. */
  kick(): void {
    if (this.closed || !this.pool || !this.started) return;
    if (this.pass) {
      this.again = true;
      return;
    }
    this.pass = this.reconcile()
      .catch((error) => this.deps.logger.error({ err: error }, "warm pools: a pass failed"))
      .finally(() => {
        this.pass = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Stops filling (a fill cut short is drained by the next server); the members stay for the next server. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const { controller } of this.fills.values()) controller.abort(new Error("the server is shutting down"));
    await this.pass;
    await Promise.allSettled([...this.busy]);
  }

  private async reconcile(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    const settings = await this.deps.settings.get();
    const wanted = settings.cvmEnabled ? settings.pools : [];
    await this.resync(pool);
    await this.checkVersions(pool, wanted);
    const versions = new Map<string, string>();
    for (const [image, known] of this.versions) if (known.version) versions.set(image, known.version);
    const steps = planPools({
      pools: wanted,
      members: [...this.members.values()].filter((m) => !this.reserved.has(m.id)),
      settings,
      imageVersions: versions,
    });
    for (const step of steps) {
      if ("drain" in step) this.track(this.drainNow(step.drain, step.why));
      else if (this.fills.size < (this.deps.fillConcurrency ?? 1)) this.fill(pool, step.fill, settings);
    }
  }

  /** What the provider says of the members (one that stopped or vanished while it waited is failed). */
  private async resync(pool: WorkloadPool): Promise<void> {
    if (Date.now() - this.syncedAt < 30_000) return;
    this.syncedAt = Date.now();
    const held = new Map((await pool.members()).map((m) => [m.id, m]));
    for (const member of this.members.values()) {
      const seen = held.get(member.id);
      if (member.state === "ready" && !this.reserved.has(member.id) && seen?.state !== "ready") {
        this.members.set(member.id, { ...member, state: "failed", reason: seen?.reason ?? "its record is gone" });
      }
    }
  }

  /** Each pool's image in its registry, asked at most every `versionCheckMs`; a changed one drains its members. */
  private async checkVersions(pool: WorkloadPool, wanted: readonly WarmPool[]): Promise<void> {
    const every = this.deps.versionCheckMs ?? 60_000;
    for (const image of new Set(wanted.map((p) => p.image))) {
      const known = this.versions.get(image);
      if (known && Date.now() - known.checkedAt < every) continue;
      const version = await answerOrNothing(pool.imageVersion(image), 5000);
      this.versions.set(image, { version: version ?? known?.version, checkedAt: Date.now() });
    }
  }

  /** Builds a member in the background; when it ends (ready or failed), another pass follows. */
  private fill(pool: WorkloadPool, of: WarmPool, settings: InfrastructureSettings): void {
    const member = newMember(of, newId("env"), settings, new Date().toISOString());
    const controller = new AbortController();
    const logger = this.deps.logger.child({ component: "warm-pools", member: member.id, pool: member.pool });
    const begun = Date.now();
    this.members.set(member.id, member);
    const done = pool
      .fill(member, {
        settings,
        log: async (text) => logger.debug({ text }, "fill"),
        enter: async () => undefined,
        signal: controller.signal,
      })
      .then(
        (ready) => {
          if (this.members.has(member.id)) this.members.set(member.id, ready);
          logger.info({ ms: Date.now() - begun }, "warm pool member ready");
        },
        (error) => {
          if (controller.signal.aborted)
            logger.info({ why: messageOf(controller.signal.reason) }, "warm pool fill stopped");
          else logger.warn({ err: error }, "warm pool member failed to build");
          if (this.members.has(member.id)) {
            this.members.set(member.id, { ...member, state: "failed", reason: messageOf(error) });
          }
        },
      )
      .finally(() => {
        this.fills.delete(member.id);
        this.kick();
      });
    this.fills.set(member.id, { controller, done });
    this.track(done);
  }

  /** Removes a member now (aborting its fill first, if any). */
  private async drainNow(member: PoolMember, why: string): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    this.members.delete(member.id);
    const filling = this.fills.get(member.id);
    filling?.controller.abort(new Error(why));
    // A fill winds down before its member is removed, or it could leave a container behind.
    await filling?.done;
    this.deps.logger.info({ member: member.id, pool: member.pool, why }, "draining a warm pool member");
    await pool.drain(member);
  }

  private track(work: Promise<unknown>): void {
    const tracked = work
      .catch((error) => this.deps.logger.warn({ err: error }, "warm pools: a step failed"))
      .finally(() => this.busy.delete(tracked));
    this.busy.add(tracked);
  }
}
