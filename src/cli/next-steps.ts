/**
 * What to run next for an environment that is not running, named as the
 * commands to type: after a start or rebuild that did not end running, and
 * when `cvm ssh` is refused because the environment is not running.
 */

import type { Environment, EnvironmentState } from "../core/environment.js";

const steps: Record<Exclude<EnvironmentState, "running">, (name: string) => string[]> = {
  stopped: (name) => [`Start it: cvm env start ${name}`],
  failed: (name) => [
    `See why in its build log: cvm env logs ${name}`,
    `Try again: cvm env rebuild ${name}`,
    `Or, for another image: cvm env delete ${name}, then cvm env create ${name} --image REF`,
  ],
  queued: (name) => [`Wait until it runs: cvm env logs ${name} --follow`],
  pulling: (name) => [`Wait until it runs: cvm env logs ${name} --follow`],
  creating: (name) => [`Wait until it runs: cvm env logs ${name} --follow`],
  starting: (name) => [`Wait until it runs: cvm env logs ${name} --follow`],
  stopping: (name) => [`Start it again once stopped: cvm env start ${name}`],
  deleting: () => ["It is being deleted."],
  deleted: () => ["It was deleted."],
};

/** "dev is stopped" or "dev failed: the image has no shell". */
export function stateSentence(environment: Environment): string {
  const reason = environment.stateReason ? `: ${environment.stateReason}` : "";
  return environment.state === "failed"
    ? `${environment.name} failed${reason}`
    : `${environment.name} is ${environment.state}${reason}`;
}

export function nextSteps(environment: Environment): string[] {
  return environment.state === "running" ? [] : steps[environment.state](environment.name);
}
