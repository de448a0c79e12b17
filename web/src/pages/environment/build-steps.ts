/**
 * The current build's steps and how long each took, read from the
 * environment's timeline: what the page shows while an environment builds
 * (instead of nothing), and what a failure names as the step that failed.
 */

import {
  buildingStates,
  type Environment,
  type EnvironmentState,
  type StateChange,
} from "../../../../src/core/environment.js";

export type StepStatus = "done" | "current" | "failed" | "pending";

export interface BuildStep {
  state: EnvironmentState;
  label: string;
  status: StepStatus;
  /** How long it took, or has taken so far; absent while pending. */
  ms?: number;
}

const labels: Partial<Record<EnvironmentState, (cvm: boolean) => string>> = {
  queued: () => "Queued",
  pulling: () => "Pull the image",
  creating: () => "Create the container",
  starting: (cvm) => (cvm ? "Boot: systemd as PID 1, then Docker inside" : "Start"),
};

/** The timeline's entries since the current build began (the last move into a building state from outside one). */
export function currentBuild(timeline: readonly StateChange[]): StateChange[] {
  for (let i = timeline.length - 1; i >= 0; i--) {
    const building = buildingStates.includes(timeline[i].state);
    const before = timeline[i - 1];
    if (building && (!before || !buildingStates.includes(before.state))) return timeline.slice(i);
  }
  return [];
}

export function buildSteps(environment: Pick<Environment, "timeline" | "cvm">, now: number): BuildStep[] {
  const passage = currentBuild(environment.timeline);
  if (passage.length === 0) return [];
  const first = buildingStates.indexOf(passage[0].state);
  return buildingStates.slice(first).map((state) => {
    const label = labels[state]?.(environment.cvm) ?? state;
    const at = passage.findIndex((change) => change.state === state);
    if (at < 0) return { state, label, status: "pending" };
    const next = passage[at + 1];
    const began = Date.parse(passage[at].at);
    if (!next) return { state, label, status: "current", ms: now - began };
    return { state, label, status: next.state === "failed" ? "failed" : "done", ms: Date.parse(next.at) - began };
  });
}

/** How long the environment stayed in each state of its timeline; the last one, while it lasts, until now. */
export function timeInStates(timeline: readonly StateChange[], now: number): (number | undefined)[] {
  const resting: readonly EnvironmentState[] = ["running", "stopped", "failed", "deleted"];
  return timeline.map((change, i) => {
    const next = timeline[i + 1];
    if (next) return Date.parse(next.at) - Date.parse(change.at);
    return resting.includes(change.state) ? undefined : now - Date.parse(change.at);
  });
}
