/**
 * Idle stop: a running environment that nobody used for its idle time (its
 * own, else the site's; 0 never) is stopped, and its build log says why.
 * Use is what Activity counts; each tick writes what this server saw to the
 * store first, so replicas share one last use per environment. The clock
 * starts, at the latest, when the environment became running and when this
 * server started (a restarted server has not seen the connections before it).
 */

import type { Logger } from "pino";
import { CvmError } from "../core/errors.js";
import type { Store } from "../core/store.js";
import type { Activity } from "./activity.js";
import type { Actor } from "./audit-log.js";
import type { EnvironmentService } from "./environments/index.js";
import type { SettingsService } from "./settings-service.js";

/** Who stops an idle environment, in the audit log. */
export const idleStopActor: Actor = { id: "system", email: "cvm (idle stop)", role: "site-admin" };

export interface IdleStopperOptions {
  store: Store;
  settings: SettingsService;
  environments: EnvironmentService;
  activity: Activity;
  logger: Logger;
  /** How often to look (default 30 s). */
  intervalMs?: number;
}

export interface IdleStatus {
  /** The idle time that applies, in minutes; 0: never stops. */
  minutes: number;
  source: "environment" | "site";
  lastActiveAt?: string;
  /** When it stops if nobody uses it meanwhile (running environments with an idle time). */
  stopsAt?: string;
}

export class IdleStopper {
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private readonly startedAt = Date.now();

  constructor(private readonly deps: IdleStopperOptions) {}

  start(): void {
    const every = this.deps.intervalMs ?? 30_000;
    this.timer = setInterval(() => {
      this.ticking ??= this.tick()
        .then(() => undefined)
        .catch((error) => this.deps.logger.warn({ err: error }, "idle stop"))
        .finally(() => {
          this.ticking = undefined;
        });
    }, every);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
  }

  /** The idle time that applies to an environment, and when it stops. */
  async status(environment: {
    id: string;
    state: string;
    timeline: { state: string; at: string }[];
  }): Promise<IdleStatus> {
    const own = await this.deps.store.workspace.idleStopMinutes(environment.id);
    const minutes = own ?? (await this.deps.settings.get()).idleStopMinutes;
    const lastActiveAt = await this.deps.store.workspace.lastActiveAt(environment.id);
    const status: IdleStatus = { minutes, source: own === undefined ? "site" : "environment", lastActiveAt };
    if (environment.state === "running" && minutes > 0) {
      status.stopsAt = new Date(this.clockStart(environment, lastActiveAt) + minutes * 60_000).toISOString();
    }
    return status;
  }

  private clockStart(environment: { timeline: { state: string; at: string }[] }, lastActiveAt?: string): number {
    const runningSince = [...environment.timeline].reverse().find((t) => t.state === "running")?.at;
    return Math.max(
      this.startedAt,
      runningSince ? Date.parse(runningSince) : 0,
      lastActiveAt ? Date.parse(lastActiveAt) : 0,
    );
  }

  /** One look: record what this server saw, then stop what has been idle long enough. */
  async tick(now = Date.now()): Promise<string[]> {
    for (const [environmentId, at] of this.deps.activity.drain(now)) {
      await this.deps.store.workspace.recordActivity(environmentId, new Date(at).toISOString()).catch(() => undefined);
    }
    const stopped: string[] = [];
    for (const environment of await this.deps.store.environments.list({ state: "running" })) {
      if (this.deps.activity.openCount(environment.id) > 0) continue;
      const { minutes, stopsAt } = await this.status(environment);
      if (!minutes || !stopsAt || Date.parse(stopsAt) > now) continue;
      const reason = `idle for ${minutes} minute${minutes === 1 ? "" : "s"}: no terminal, SSH session or forwarded connection`;
      try {
        await this.deps.environments.stop(idleStopActor, environment.id, reason);
        stopped.push(environment.id);
        this.deps.logger.info({ environmentId: environment.id, minutes }, "stopped an idle environment");
      } catch (error) {
        // Someone else stopped or changed it meanwhile: nothing to do.
        if (!(error instanceof CvmError && error.code === "CONFLICT")) throw error;
      }
    }
    return stopped;
  }
}
