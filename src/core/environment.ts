/**
 * Environments: their states, the transitions between them, and the rules for
 * a valid specification. Plain data and functions, no I/O.
 */

import { CvmError, invalid, type Validation } from "./errors.js";
import { isImageReference, parseImageReference } from "./image-reference.js";
import type { EnvironmentSpec, StateChange } from "./schemas.js";
import type { EnvironmentLimits } from "./settings.js";

// The shapes themselves are zod schemas in ./schemas.ts; their types are re-exported here.
export type {
  Environment,
  EnvironmentSpec,
  EnvironmentSummary,
  RegistryCredentials,
  StateChange,
} from "./schemas.js";

export const environmentStates = [
  "queued",
  "pulling",
  "creating",
  "starting",
  "running",
  "stopping",
  "stopped",
  "failed",
  "deleting",
  "deleted",
] as const;
export type EnvironmentState = (typeof environmentStates)[number];

/** The states a build passes through; stop or delete may interrupt any of them. */
export const buildingStates: readonly EnvironmentState[] = ["queued", "pulling", "creating", "starting"];

/** The states an environment stays in until someone acts: what a client waits for after start, stop or rebuild. */
export const restingStates: readonly EnvironmentState[] = ["running", "stopped", "failed", "deleted"];

/** queued -> starting: a CVM claimed from a warm pool is already pulled and made; it only starts. */
const transitions: Record<EnvironmentState, readonly EnvironmentState[]> = {
  queued: ["pulling", "starting", "failed", "stopping", "deleting"],
  pulling: ["creating", "failed", "stopping", "deleting"],
  creating: ["starting", "failed", "stopping", "deleting"],
  starting: ["running", "failed", "stopping", "deleting"],
  running: ["stopping", "queued", "failed", "deleting"],
  stopping: ["stopped", "failed", "deleting"],
  stopped: ["starting", "queued", "failed", "deleting"],
  failed: ["starting", "queued", "deleting"],
  deleting: ["deleted", "failed"],
  deleted: [],
};

export function canTransition(from: EnvironmentState, to: EnvironmentState): boolean {
  return transitions[from].includes(to);
}

/**
 * What an unfinished build set out to do, read from the timeline: a run of
 * build states that began at `starting` (from stopped or failed) starts the
 * existing workload; one that began `queued` builds it anew (create, rebuild).
 * A server that resumes an interrupted build must not build afresh what was
 * only being started: that would throw away the workload's own writes.
 */
export function unfinishedBuildKind(timeline: readonly StateChange[]): "build" | "start" {
  let first: EnvironmentState | undefined;
  for (let i = timeline.length - 1; i >= 0 && buildingStates.includes(timeline[i].state); i--) {
    first = timeline[i].state;
    if (first === "queued") break;
  }
  return first === "starting" ? "start" : "build";
}

export type EnvironmentAction = "start" | "stop" | "rebuild" | "delete";

/** The state each action moves to first, and the states it may begin from. */
const actions: Record<EnvironmentAction, { from: readonly EnvironmentState[]; to: EnvironmentState }> = {
  start: { from: ["stopped", "failed"], to: "starting" },
  stop: { from: ["queued", "pulling", "creating", "starting", "running"], to: "stopping" },
  rebuild: { from: ["stopped", "running", "failed"], to: "queued" },
  delete: { from: environmentStates.filter((s) => s !== "deleted" && s !== "deleting"), to: "deleting" },
};

/** Whether the action may begin from this state: what a client offers (a button, a row's action). */
export function actionAllowed(action: EnvironmentAction, state: EnvironmentState): boolean {
  return actions[action].from.includes(state);
}

/** Throws a 409 naming the current state when the action cannot begin from it. */
export function assertActionAllowed(action: EnvironmentAction, state: EnvironmentState): EnvironmentState {
  const rule = actions[action];
  if (!rule.from.includes(state)) {
    throw new CvmError("CONFLICT", `Cannot ${action} an environment that is ${state}`, {
      detail: `${action} is allowed from: ${rule.from.join(", ")}`,
    });
  }
  return rule.to;
}

/** What systemd inside a CVM reports (`unavailable` for a standard environment, which has none). */
export const systemdStatuses = ["running", "degraded", "starting", "unavailable", "unknown"] as const;
/** Whether the Docker engine inside an environment answers. */
export const dockerStatuses = ["answering", "not-answering", "absent", "unknown"] as const;
/** The isolation runtime an environment runs under: `none` for a standard environment. */
export const isolationRuntimeNames = ["userns", "sysbox", "none"] as const;
export type SystemdStatus = (typeof systemdStatuses)[number];
export type DockerStatus = (typeof dockerStatuses)[number];
export type IsolationRuntimeName = (typeof isolationRuntimeNames)[number];

/** A CVM (systemd and Docker inside), or a standard environment (a plain container): `cvm` true or false. */
export const environmentKinds = ["cvm", "standard"] as const;
export type EnvironmentKind = (typeof environmentKinds)[number];

export const defaultResources = { cpu: 2, memoryGiB: 4, diskGiB: 20 } as const;

/** An environment's name is a DNS label; as plain data too, so the API's schemas state it. */
export const nameRule = { maxLength: 63, pattern: /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/ } as const;

export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== "string" || name.length === 0) return "is required";
  if (name.length > nameRule.maxLength) return `must be at most ${nameRule.maxLength} characters (a DNS label)`;
  if (!nameRule.pattern.test(name)) {
    return "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit";
  }
  return undefined;
}

/** "1 CPU", "2 CPUs", "0.5 CPUs": a CPU count as a person writes it. */
export function cpuCount(cpu: number): string {
  return `${cpu} ${cpu === 1 ? "CPU" : "CPUs"}`;
}

const gib = (size: number) => `${size} GiB`;

function sizeProblem(value: unknown, amount: (size: number) => string, min: number, max: number): string | undefined {
  if (typeof value !== "number" || !Number.isFinite(value)) return "must be a number";
  if (value < min) return `must be at least ${amount(min)}`;
  if (value > max) return `must be at most ${amount(max)} (the limit an admin set)`;
  return undefined;
}

/** Every problem with a requested spec, each on its field; empty when valid. */
export function specProblems(input: Partial<EnvironmentSpec>, limits: EnvironmentLimits): Validation[] {
  const problems: Validation[] = [];
  const add = (field: string, detail: string | undefined) => {
    if (detail) problems.push({ field, detail });
  };
  add("name", nameProblem(input.name));
  if (typeof input.image !== "string") add("image", "is required");
  else {
    const parsed = parseImageReference(input.image);
    if (!isImageReference(parsed)) add("image", parsed.problem);
  }
  if (input.cvm !== undefined && typeof input.cvm !== "boolean") add("cvm", "must be true or false");
  add("cpu", sizeProblem(input.cpu, cpuCount, limits.minCpu, limits.maxCpu));
  add("memoryGiB", sizeProblem(input.memoryGiB, gib, limits.minMemoryGiB, limits.maxMemoryGiB));
  add("diskGiB", sizeProblem(input.diskGiB, gib, limits.minDiskGiB, limits.maxDiskGiB));
  return problems;
}

const clamp = (value: number, min: number, max: number) => Math.min(Math.max(value, min), max);

/** The size a request that names none gets: the defaults, bent to the admin's limits (a warm pool's too). */
export function defaultSize(limits: EnvironmentLimits): Pick<EnvironmentSpec, "cpu" | "memoryGiB" | "diskGiB"> {
  return {
    cpu: clamp(defaultResources.cpu, limits.minCpu, limits.maxCpu),
    memoryGiB: clamp(defaultResources.memoryGiB, limits.minMemoryGiB, limits.maxMemoryGiB),
    diskGiB: clamp(defaultResources.diskGiB, limits.minDiskGiB, limits.maxDiskGiB),
  };
}

/**
 * Fills defaults, then validates; throws one 400 with every problem. A default
 * size bends to the admin's limits (a user who asked for nothing should not be
 * refused over a number they never gave); a size given is checked as given.
 * Only the spec's own fields come back, whatever else the input carried.
 */
export function resolveSpec(input: Partial<EnvironmentSpec>, limits: EnvironmentLimits): EnvironmentSpec {
  const defaults = defaultSize(limits);
  const spec: EnvironmentSpec = {
    name: input.name as string,
    image: input.image as string,
    cvm: input.cvm ?? false,
    cpu: input.cpu ?? defaults.cpu,
    memoryGiB: input.memoryGiB ?? defaults.memoryGiB,
    diskGiB: input.diskGiB ?? defaults.diskGiB,
  };
  const problems = specProblems(spec, limits);
  if (problems.length > 0) throw invalid(problems, "Invalid environment");
  return spec;
}
