/**
 * The provider's stop, removal and discard as the environment service makes
 * them: each one fails once it has taken longer than a bound, so a user's
 * stop or delete, a restart's reconcile and a failed build's clean-up all
 * end. An engine can hold one forever (Docker 20.10 waits with no timeout
 * for the exit of a container it has killed), and an environment left
 * `deleting` by it could never be deleted again.
 */

import { answerWithin } from "../../core/deadline.js";
import type { Environment } from "../../core/environment.js";
import type { Provider } from "../../core/provider.js";

/** Beyond every provider's own waits for a stop or removal: only an engine that will not answer takes longer. */
export const workloadChangeTimeoutMs = 180_000;

export interface WorkloadChangesOptions {
  provider: Provider;
  /** How long systemd gets to shut down on stop (20 s). */
  stopTimeoutSeconds?: number;
  /** How long a stop or removal may take before it counts as failed (workloadChangeTimeoutMs). */
  workloadChangeTimeoutMs?: number;
}

export class WorkloadChanges {
  constructor(private readonly deps: WorkloadChangesOptions) {}

  stop(environment: Environment, timeoutSeconds = this.deps.stopTimeoutSeconds ?? 20): Promise<void> {
    return this.bounded(this.deps.provider.stop(environment, timeoutSeconds), "stopping its workload");
  }

  remove(environment: Environment, options: { keepHome: boolean }): Promise<void> {
    return this.bounded(this.deps.provider.remove(environment, options), "removing its workload");
  }

  discard(environment: Environment, options: { keepDockerData: boolean }): Promise<void> {
    return this.bounded(this.deps.provider.discard(environment, options), "discarding its workload");
  }

  private bounded(work: Promise<void>, what: string): Promise<void> {
    return answerWithin(work, this.deps.workloadChangeTimeoutMs ?? workloadChangeTimeoutMs, what);
  }
}
