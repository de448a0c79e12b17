/**
 * The seccomp profile of a CVM: Docker's default profile (the one Docker
 * 20.10 applies to every container, vendored unchanged in
 * seccomp-docker-default.json from github.com/moby/moby
 * profiles/seccomp/default.json, Apache-2.0) plus exactly the system calls
 * that systemd and an inner dockerd were shown to need inside a user
 * namespace. Docker resolves the profile's capability conditions against the
 * container's capabilities, so the mount family (allowed with CAP_SYS_ADMIN)
 * comes from the default profile itself once SYS_ADMIN is added; and every
 * capability a CVM holds counts only inside its user namespace.
 *
 * Proved by hand on this kind of node (Debian 12, cgroup v1, systemd 252,
 * docker.io 20.10 inside) and by test/cvm/runtime.test.ts:
 * - the default profile alone: systemd reaches `running` and the inner
 *   dockerd answers, but a nested `docker run` fails;
 * - `add_key` and `request_key` are not needed: a nested `docker run`
 *   succeeds without them, so they stay denied.
 *
 * A CVM holds every capability (cvm-container.ts), which would open every
 * capability-conditioned rule of Docker's profile (module loading, the clock,
 * reboot, ioperm). cvm resolves those conditions itself, for the capabilities
 * a CVM held before it held them all (`syscallCapabilities`), so the
 * profile's system calls are the same as then, for the CVM and everything
 * nested in it (seccomp filters stack: a nested --privileged container is
 * still under the CVM's).
 */

import { readFileSync } from "node:fs";

export interface SeccompRule {
  names: string[];
  action: string;
  args?: unknown[] | null;
  comment?: string;
  includes?: Record<string, unknown>;
  excludes?: Record<string, unknown>;
  errnoRet?: number;
}

export interface SeccompProfile {
  defaultAction: string;
  archMap?: unknown[];
  syscalls: SeccompRule[];
}

/** What a CVM needs beyond Docker's default profile, each with the failure that proved it. */
export const cvmSyscallAdditions: { names: string[]; why: string }[] = [
  {
    names: ["keyctl"],
    why:
      "The inner runc joins a fresh session keyring for every nested container; without it a nested " +
      "`docker run` fails: 'unable to join session keyring: operation not permitted'. Keyrings are " +
      "charged to the CVM's remapped uid, not to the node's root.",
  },
  {
    names: ["pivot_root"],
    why:
      "The inner runc pivots into each nested container's root filesystem; without it a nested " +
      "`docker run` fails: 'error jailing process inside rootfs: pivot_root .: operation not permitted'. " +
      "It only ever changes the root of the caller's own mount namespace.",
  },
];

/**
 * The capabilities whose system calls a CVM may make: Docker's default set
 * plus SYS_ADMIN and NET_ADMIN (what a CVM held before it held every one).
 */
export const syscallCapabilities = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
  "CAP_SYS_ADMIN",
  "CAP_NET_ADMIN",
] as const;

let dockerDefault: SeccompProfile | undefined;

export function dockerDefaultProfile(): SeccompProfile {
  dockerDefault ??= JSON.parse(
    readFileSync(new URL("./seccomp-docker-default.json", import.meta.url), "utf8"),
  ) as SeccompProfile;
  return dockerDefault;
}

/**
 * The profile as Docker would apply it to a container holding `held`, with
 * the capability conditions gone: a rule needing capabilities is kept only if
 * all are held, a rule excluded by one is dropped if any is held (Docker's own
 * reading, profiles/seccomp), and the arch and kernel conditions stay.
 */
export function resolveCapabilities(profile: SeccompProfile, held: readonly string[]): SeccompProfile {
  const holds = new Set(held);
  const syscalls = profile.syscalls.flatMap((rule) => {
    const { caps: needed, ...includes } = (rule.includes ?? {}) as { caps?: string[] };
    const { caps: excluded, ...excludes } = (rule.excludes ?? {}) as { caps?: string[] };
    if (needed && !needed.every((cap) => holds.has(cap))) return [];
    if (excluded?.some((cap) => holds.has(cap))) return [];
    return [{ ...rule, includes, excludes }];
  });
  return { ...profile, syscalls };
}

/** Docker's default profile, resolved for `syscallCapabilities`, plus the CVM additions (`seccomp=<json>`). */
export function cvmSeccompProfile(): SeccompProfile {
  const base = resolveCapabilities(dockerDefaultProfile(), syscallCapabilities);
  return {
    ...base,
    syscalls: [
      ...base.syscalls,
      ...cvmSyscallAdditions.map(({ names, why }) => ({
        names,
        action: "SCMP_ACT_ALLOW",
        args: [],
        comment: `cvm: ${why}`,
        includes: {},
        excludes: {},
      })),
    ],
  };
}

/** Every syscall name a profile allows unconditionally (no argument, capability or arch condition). */
export function unconditionallyAllowed(profile: SeccompProfile): Set<string> {
  const allowed = new Set<string>();
  for (const rule of profile.syscalls) {
    const conditional =
      (rule.args?.length ?? 0) > 0 ||
      Object.keys(rule.includes ?? {}).length > 0 ||
      Object.keys(rule.excludes ?? {}).length > 0;
    if (rule.action === "SCMP_ACT_ALLOW" && !conditional) for (const name of rule.names) allowed.add(name);
  }
  return allowed;
}
