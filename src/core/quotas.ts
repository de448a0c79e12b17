/**
 * Per-member quotas an admin sets (settings `quotas`): how many environments
 * a member may have, how many CPUs and how much memory their environments may
 * hold while they run or build, and how many terminals they may have open.
 * Site admins and managers set the quotas and are not held to them. Plain
 * rules: the server counts, these decide, and a refusal names the quota.
 */

import type { Environment, EnvironmentState } from "./environment.js";
import { buildingStates } from "./environment.js";
import { CvmError } from "./errors.js";
import type { Role } from "./roles.js";
import type { UserQuotas } from "./schemas.js";

/** The states in which an environment holds its CPUs and memory on the node. */
export const holdingStates: readonly EnvironmentState[] = [...buildingStates, "running", "stopping"];

export function heldToQuotas(role: Role): boolean {
  return role === "member";
}

export interface QuotaUsage {
  environments: number;
  runningCpu: number;
  runningMemoryGiB: number;
}

/** What a member's environments count against their quotas; `except` leaves out the one being started. */
export function quotaUsage(environments: readonly Environment[], except?: string): QuotaUsage {
  const usage: QuotaUsage = { environments: 0, runningCpu: 0, runningMemoryGiB: 0 };
  for (const environment of environments) {
    if (environment.state === "deleted") continue;
    usage.environments += 1;
    if (environment.id === except || !holdingStates.includes(environment.state)) continue;
    usage.runningCpu += environment.cpu;
    usage.runningMemoryGiB += environment.memoryGiB;
  }
  return usage;
}

const units: Record<keyof UserQuotas, (n: number) => string> = {
  environments: (n) => `${n} environment${n === 1 ? "" : "s"}`,
  runningCpu: (n) => `${n} CPU${n === 1 ? "" : "s"} in running environments`,
  runningMemoryGiB: (n) => `${n} GiB of memory in running environments`,
  terminals: (n) => `${n} open terminal${n === 1 ? "" : "s"}`,
};

/** The 409 a refused request gets: which quota, its value, and what is in use. */
export function quotaReached(quota: keyof UserQuotas, limit: number, inUse: number, wanted: number): CvmError {
  return new CvmError("CONFLICT", `Quota reached: a member may have at most ${units[quota](limit)} (quota ${quota})`, {
    detail: `${units[quota](inUse)} in use, ${wanted} more asked for; stop or delete what you no longer need, or ask an admin to raise the quota (Manage > Admin > Infrastructure)`,
    validations: [{ field: `quotas.${quota}`, detail: `${inUse} of ${limit} in use` }],
  });
}

/**
 * Throws the 409 of the first quota that `adding` would exceed; 0 is no
 * quota. Creating adds an environment and what it holds; starting adds only
 * what it holds.
 */
export function checkQuotas(
  quotas: UserQuotas,
  usage: QuotaUsage,
  adding: { environments: number; cpu: number; memoryGiB: number },
): void {
  const checks: [keyof UserQuotas, number, number][] = [
    ["environments", usage.environments, adding.environments],
    ["runningCpu", usage.runningCpu, adding.cpu],
    ["runningMemoryGiB", usage.runningMemoryGiB, adding.memoryGiB],
  ];
  for (const [quota, inUse, wanted] of checks) {
    const limit = quotas[quota];
    // A little slack for sums of fractions (0.1 + 0.2).
    if (limit > 0 && wanted > 0 && inUse + wanted > limit + 1e-9) throw quotaReached(quota, limit, inUse, wanted);
  }
}
