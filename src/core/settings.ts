/**
 * Infrastructure settings: what an admin sets under Manage > Admin >
 * Infrastructure. Only site admins and site managers change them.
 */

import type { Validation } from "./errors.js";
import { cidrProblem, networkReaches } from "./network-policy.js";
import type { EnvironmentLimits, InfrastructureSettings, UserQuotas } from "./schemas.js";
import { poolProblems } from "./warm-pool.js";

export { type NetworkReach, networkReaches } from "./network-policy.js";
// The shapes themselves are zod schemas in ./schemas.ts; their types are re-exported here.
export type {
  EnvironmentLimits,
  EnvironmentNetwork,
  InfrastructureSettings,
  SupervisorPrivileges,
  UserQuotas,
} from "./schemas.js";

export const runtimeChoices = ["auto", "sysbox", "userns"] as const;
export type RuntimeChoice = (typeof runtimeChoices)[number];

/**
 * How the supervising container is privileged. Kubernetes clusters usually
 * admit `privileged`; where a policy or the node forbids it (this project's own
 * machines lack CAP_SYS_RESOURCE), operators list the capabilities instead.
 */
export const supervisorPrivilegeModes = ["privileged", "capabilities"] as const;
export type SupervisorPrivilegeMode = (typeof supervisorPrivilegeModes)[number];

/** The capabilities a supervisor needs to run its own engine without privileged mode. */
export const supervisorCapabilities = [
  "CHOWN",
  "DAC_OVERRIDE",
  "FOWNER",
  "FSETID",
  "KILL",
  "SETGID",
  "SETUID",
  "SETPCAP",
  "NET_BIND_SERVICE",
  "NET_RAW",
  "NET_ADMIN",
  "SYS_ADMIN",
  "SYS_CHROOT",
  "SYS_PTRACE",
  "MKNOD",
  "AUDIT_WRITE",
  "SETFCAP",
] as const;

export const defaultSettings: InfrastructureSettings = {
  cvmEnabled: false,
  runtime: "auto",
  supervisorPrivileges: { mode: "privileged", capabilities: [...supervisorCapabilities] },
  limits: {
    minCpu: 0.25,
    maxCpu: 16,
    minMemoryGiB: 0.25,
    maxMemoryGiB: 64,
    minDiskGiB: 1,
    maxDiskGiB: 500,
    pids: 0,
  },
  quotas: { environments: 10, runningCpu: 16, runningMemoryGiB: 64, terminals: 20 },
  network: { reach: "owner", allowedNetworks: [] },
  fuseDevice: true,
  tunDevice: true,
  lxcfs: true,
  publicPorts: true,
  portsHost: "",
  idleStopMinutes: 0,
  pools: [],
};

const hostName = /^(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(:\d{1,5})?$/i;

/** Idle stop: whole minutes, up to 30 days; 0 turns it off. */
export function idleMinutesProblem(value: unknown): string | undefined {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 43_200) {
    return "must be whole minutes from 0 (never) to 43200 (30 days)";
  }
  return undefined;
}

const capabilityName = /^[A-Z][A-Z_]*$/;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Problems with a settings document as a whole; empty when valid. It may be
 * handed a malformed document (a merge of stored settings and a request), so
 * it reports wrong shapes rather than throwing on them.
 */
export function settingsProblems(settings: InfrastructureSettings): Validation[] {
  const problems: Validation[] = [];
  for (const field of ["cvmEnabled", "fuseDevice", "tunDevice", "lxcfs"] as const) {
    if (typeof settings[field] !== "boolean") problems.push({ field, detail: "must be true or false" });
  }
  if (!(runtimeChoices as readonly unknown[]).includes(settings.runtime)) {
    problems.push({ field: "runtime", detail: `must be one of ${runtimeChoices.join(", ")}` });
  }
  if (typeof settings.publicPorts !== "boolean")
    problems.push({ field: "publicPorts", detail: "must be true or false" });
  if (typeof settings.portsHost !== "string" || (settings.portsHost !== "" && !hostName.test(settings.portsHost))) {
    problems.push({ field: "portsHost", detail: "must be empty or a host name such as cvm.example.com" });
  }
  const idle = idleMinutesProblem(settings.idleStopMinutes);
  if (idle) problems.push({ field: "idleStopMinutes", detail: idle });
  const privileges: unknown = settings.supervisorPrivileges;
  if (!isObject(privileges)) {
    problems.push({ field: "supervisorPrivileges", detail: "must be an object with mode and capabilities" });
  } else {
    if (!(supervisorPrivilegeModes as readonly unknown[]).includes(privileges.mode)) {
      problems.push({ field: "supervisorPrivileges.mode", detail: `must be ${supervisorPrivilegeModes.join(" or ")}` });
    }
    const capabilities = privileges.capabilities;
    if (!Array.isArray(capabilities)) {
      problems.push({ field: "supervisorPrivileges.capabilities", detail: "must be a list of capability names" });
    } else {
      const badCaps = capabilities.filter((c) => typeof c !== "string" || !capabilityName.test(c.replace(/^CAP_/, "")));
      if (badCaps.length > 0) {
        problems.push({
          field: "supervisorPrivileges.capabilities",
          detail: `not capability names: ${badCaps.map((c) => (typeof c === "string" ? c : JSON.stringify(c))).join(", ")}`,
        });
      }
      if (privileges.mode === "capabilities" && capabilities.length === 0) {
        problems.push({ field: "supervisorPrivileges.capabilities", detail: "must list at least one capability" });
      }
    }
  }
  const limits: unknown = settings.limits;
  if (!isObject(limits)) {
    problems.push({ field: "limits", detail: "must be an object with the minimum and maximum sizes" });
    return problems;
  }
  const pairs: [keyof EnvironmentLimits, keyof EnvironmentLimits][] = [
    ["minCpu", "maxCpu"],
    ["minMemoryGiB", "maxMemoryGiB"],
    ["minDiskGiB", "maxDiskGiB"],
  ];
  for (const [min, max] of pairs) {
    const valid = [min, max].filter((key) => {
      const value = limits[key];
      if (typeof value === "number" && Number.isFinite(value) && value > 0) return true;
      problems.push({ field: `limits.${key}`, detail: "must be a positive number" });
      return false;
    });
    if (valid.length === 2 && (limits[min] as number) > (limits[max] as number)) {
      problems.push({ field: `limits.${min}`, detail: `must not exceed ${max}` });
    }
  }
  if (!isCount(limits.pids))
    problems.push({ field: "limits.pids", detail: "must be a whole number, 0 or more (0: sized to the node)" });
  problems.push(...quotaProblems(settings.quotas), ...networkProblems(settings.network));
  problems.push(...poolProblems(settings.pools, limits as EnvironmentLimits));
  return problems;
}

const isCount = (value: unknown) => typeof value === "number" && Number.isInteger(value) && value >= 0;
const isAmount = (value: unknown) => typeof value === "number" && Number.isFinite(value) && value >= 0;

function quotaProblems(quotas: unknown): Validation[] {
  if (!isObject(quotas)) return [{ field: "quotas", detail: "must be an object with each member's quotas" }];
  const rules: [keyof UserQuotas, (value: unknown) => boolean, string][] = [
    ["environments", isCount, "a whole number"],
    ["runningCpu", isAmount, "a number"],
    ["runningMemoryGiB", isAmount, "a number"],
    ["terminals", isCount, "a whole number"],
  ];
  return rules
    .filter(([key, valid]) => !valid(quotas[key]))
    .map(([key, , kind]) => ({ field: `quotas.${key}`, detail: `must be ${kind}, 0 or more (0: no quota)` }));
}

function networkProblems(network: unknown): Validation[] {
  if (!isObject(network)) return [{ field: "network", detail: "must be an object with reach and allowedNetworks" }];
  const problems: Validation[] = [];
  if (!(networkReaches as readonly unknown[]).includes(network.reach)) {
    problems.push({ field: "network.reach", detail: `must be one of ${networkReaches.join(", ")}` });
  }
  if (!Array.isArray(network.allowedNetworks)) {
    problems.push({ field: "network.allowedNetworks", detail: "must be a list of addresses or networks" });
  } else {
    const bad = network.allowedNetworks.filter((n) => cidrProblem(n));
    if (bad.length > 0) {
      problems.push({
        field: "network.allowedNetworks",
        detail: `${cidrProblem(bad[0])}: not ${bad.map((n) => JSON.stringify(n)).join(", ")}`,
      });
    }
  }
  return problems;
}
