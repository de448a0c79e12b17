/**
 * Infrastructure settings: what an admin sets under Manage > Admin >
 * Infrastructure. Only site admins and site managers change them.
 */

import type { Validation } from "./errors.js";

export const runtimeChoices = ["auto", "sysbox", "userns"] as const;
export type RuntimeChoice = (typeof runtimeChoices)[number];

/**
 * How the supervising container is privileged. Kubernetes clusters usually
 * admit `privileged`; where a policy or the node forbids it (this project's own
 * machines lack CAP_SYS_RESOURCE), operators list the capabilities instead.
 */
export interface SupervisorPrivileges {
  mode: "privileged" | "capabilities";
  capabilities: string[];
}

export interface EnvironmentLimits {
  minCpu: number;
  maxCpu: number;
  minMemoryGiB: number;
  maxMemoryGiB: number;
  minDiskGiB: number;
  maxDiskGiB: number;
}

export interface InfrastructureSettings {
  cvmEnabled: boolean;
  runtime: RuntimeChoice;
  supervisorPrivileges: SupervisorPrivileges;
  limits: EnvironmentLimits;
}

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
  limits: { minCpu: 0.25, maxCpu: 16, minMemoryGiB: 0.25, maxMemoryGiB: 64, minDiskGiB: 1, maxDiskGiB: 500 },
};

const capabilityName = /^[A-Z][A-Z_]*$/;

/** Problems with a settings document as a whole; empty when valid. */
export function settingsProblems(settings: InfrastructureSettings): Validation[] {
  const problems: Validation[] = [];
  if (typeof settings.cvmEnabled !== "boolean") problems.push({ field: "cvmEnabled", detail: "must be true or false" });
  if (!(runtimeChoices as readonly string[]).includes(settings.runtime)) {
    problems.push({ field: "runtime", detail: `must be one of ${runtimeChoices.join(", ")}` });
  }
  const privileges = settings.supervisorPrivileges;
  if (privileges.mode !== "privileged" && privileges.mode !== "capabilities") {
    problems.push({ field: "supervisorPrivileges.mode", detail: "must be privileged or capabilities" });
  }
  const badCaps = privileges.capabilities.filter((c) => !capabilityName.test(c.replace(/^CAP_/, "")));
  if (badCaps.length > 0) {
    problems.push({
      field: "supervisorPrivileges.capabilities",
      detail: `not capability names: ${badCaps.join(", ")}`,
    });
  }
  if (privileges.mode === "capabilities" && privileges.capabilities.length === 0) {
    problems.push({ field: "supervisorPrivileges.capabilities", detail: "must list at least one capability" });
  }
  const limits = settings.limits;
  const pairs: [keyof EnvironmentLimits, keyof EnvironmentLimits][] = [
    ["minCpu", "maxCpu"],
    ["minMemoryGiB", "maxMemoryGiB"],
    ["minDiskGiB", "maxDiskGiB"],
  ];
  for (const [min, max] of pairs) {
    for (const key of [min, max]) {
      if (typeof limits[key] !== "number" || !(limits[key] > 0)) {
        problems.push({ field: `limits.${key}`, detail: "must be a positive number" });
      }
    }
    if (limits[min] > limits[max]) problems.push({ field: `limits.${min}`, detail: `must not exceed ${max}` });
  }
  return problems;
}
