/**
 * The one place an environment's record is written after it is created
 * (after Coder's wsbuilder): every state change, and every field a build or
 * an observation updates, goes through `transition`. It reads the
 * environment, asks the caller's plan what to write against what it finds,
 * refuses a move the state table (`canTransition`) does not allow, and writes
 * with the store's compare-and-set; when another writer got there first it
 * reads again and asks the plan once more. A state change appends to the
 * timeline, writes a `state: a → b` line to the build log and tells the event bus.
 */

import type { Build } from "../../core/build.js";
import { canTransition, type Environment, type EnvironmentState } from "../../core/environment.js";
import { CvmError, notFound } from "../../core/errors.js";
import type { EnvironmentPatch, Store } from "../../core/store.js";
import type { EventBus } from "../event-bus.js";

/** Timelines keep their most recent entries; the audit log keeps the rest. */
export const timelineLimit = 100;

/** What to write, decided against the environment as it is now. */
export interface Change {
  /** The state to move to; without it the state stays and only `patch` is written. */
  to?: EnvironmentState;
  /** Why, kept as the state's reason and in the timeline (failed, vanished). */
  reason?: string;
  /** Fields written with the change (a build's observation, its id). */
  patch?: EnvironmentPatch;
  /**
   * Begin a new build with this change: its log opens with the change's line
   * and it becomes the environment's current build (start, rebuild). A refused
   * change leaves no build behind.
   */
  newBuild?: boolean;
}

/** Decides the change from the environment as read; undefined leaves it as it is; a throw refuses. */
export type Plan = (current: Environment) => Change | undefined;

export interface Transitioned {
  /** The environment as the plan saw it. */
  before: Environment;
  /** As written, or as it is when the plan left it. */
  after: Environment;
  /** Whether anything was written. */
  changed: boolean;
}

const now = () => new Date().toISOString();

export class EnvironmentTransitions {
  constructor(private readonly deps: { store: Store; bus: EventBus }) {}

  /**
   * Plans and writes one change; undefined when the environment does not
   * exist. A second lost race is a 409: the environment is changing too fast
   * to act on.
   */
  async transition(id: string, plan: Plan): Promise<Transitioned | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const current = await this.deps.store.environments.get(id);
      if (!current) return undefined;
      const change = plan(current);
      if (!change) return { before: current, after: current, changed: false };
      const written = await this.write(current, change);
      if (written) return { before: current, after: written, changed: true };
    }
    throw new CvmError("CONFLICT", "The environment is changing too fast to act on; try again");
  }

  /**
   * Marks the environment failed with the reason if it is still in one of
   * `from`; otherwise what someone else did (stop, delete) stands.
   */
  fail(id: string, reason: string, from: readonly EnvironmentState[]): Promise<Transitioned | undefined> {
    return this.transition(id, (current) => (from.includes(current.state) ? { to: "failed", reason } : undefined));
  }

  /** Starts a build of a newly created environment: its log opens with `line`, and it becomes the current build. */
  async firstBuild(environment: Environment, line: string): Promise<Environment> {
    const build = await this.openBuild(environment.id, line, environment.createdAt);
    return this.attach(environment.id, build);
  }

  async appendLog(buildId: string, text: string, at = now()): Promise<void> {
    await this.deps.store.builds.appendLog(buildId, text, at);
    this.deps.bus.buildActivity(buildId);
  }

  /** Records a build's end and wakes whoever follows its log, so every follow ends with the outcome. */
  async finishBuild(buildId: string, outcome: NonNullable<Build["outcome"]>, at = now()): Promise<void> {
    await this.deps.store.builds.finish(buildId, outcome, at);
    this.deps.bus.buildActivity(buildId, outcome);
  }

  /** One compare-and-set write of a planned change; undefined when another writer got there first. */
  private async write(current: Environment, change: Change): Promise<Environment | undefined> {
    const { to, reason, patch = {} } = change;
    if (to === undefined) return this.put(current, patch);
    if (!canTransition(current.state, to)) {
      throw new CvmError("CONFLICT", `The environment is ${current.state} now; it cannot become ${to}`);
    }
    const at = now();
    const timeline = [...current.timeline, reason ? { state: to, at, reason } : { state: to, at }].slice(
      -timelineLimit,
    );
    const written = await this.put(current, { ...patch, state: to, stateReason: reason, timeline });
    if (!written) return undefined;
    const line = `state: ${current.state} → ${to}${reason ? ` (${reason})` : ""}`;
    if (change.newBuild) {
      // The state is ours now (compare-and-set won), so the build exists only for an action that began.
      return this.attach(current.id, await this.openBuild(current.id, line, at));
    }
    const buildId = patch.buildId ?? current.buildId;
    if (buildId) await this.appendLog(buildId, line, at);
    return written;
  }

  private async openBuild(environmentId: string, line: string, at: string): Promise<Build> {
    const build = await this.deps.store.builds.create(environmentId, at);
    await this.appendLog(build.id, line, at);
    return build;
  }

  /** Makes the build the environment's current one, whatever else changed meanwhile. */
  private async attach(id: string, build: Build): Promise<Environment> {
    const attached = await this.transition(id, () => ({ patch: { buildId: build.id } }));
    if (!attached) throw notFound("Environment");
    return attached.after;
  }

  private async put(current: Environment, patch: EnvironmentPatch): Promise<Environment | undefined> {
    const updated = await this.deps.store.environments.update(current.id, current.version, patch);
    if (updated) this.deps.bus.publish({ type: "environment", environment: updated });
    return updated;
  }
}
