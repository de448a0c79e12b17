/**
 * Checks of the machine whose engine runs CVMs (the docker provider). Each is
 * a reader from host-evidence.ts and a pure judge here, in one table; which
 * checks run depends on the isolation runtime the settings choose.
 */

import { existsSync } from "node:fs";
import { dirname } from "node:path";
import type { CheckResult, CheckStatus } from "../api/contract.js";
import { type CvmRuntime, resolveRuntime } from "../core/isolation-runtime.js";
import type { RuntimeChoice } from "../core/settings.js";
import { defaultDockerHost, dockerHostOf } from "../docker/index.js";
import { apparmorProfileName } from "../supervisor/apparmor.js";
import { binfmtNote, binfmtPerUserNamespace, binfmtPerUserNamespaceSince } from "../supervisor/multi-arch.js";
import {
  type AnyCheck,
  defineCheck,
  fail,
  notApplicable,
  type OnCheckProgress,
  pass,
  runChecks,
  severity,
  type Verdict,
  warn,
} from "./check.js";
import {
  type AppArmorProfileEvidence,
  type CgroupEvidence,
  type DelegationAttempt,
  type DiskEvidence,
  type EngineEvidence,
  type OsRelease,
  type OverlayAttempt,
  readAppArmorProfile,
  readCgroups,
  readDiskFree,
  readEngine,
  readKernelRelease,
  readOsRelease,
  readSecurityModules,
  readSubordinateIds,
  readUserNamespaces,
  type SecurityModuleEvidence,
  type SubordinateIdEvidence,
  type SubordinateRange,
  tryCgroupDelegation,
  tryOverlayInUserNamespace,
  type UserNamespaceEvidence,
} from "./host-evidence.js";
import { atLeast, parseVersion, type Version, version } from "./versions.js";

export interface LocalContext {
  choice: RuntimeChoice;
  /** The server's data directory, where cvm's own isolated engine keeps its images. */
  dataDir?: string;
  runtime: CvmRuntime;
  engine: EngineEvidence;
  os?: OsRelease;
}

/** The AppArmor profile cvm gives CVMs (the supervisor's), allowing the mounts an inner dockerd needs. */
export const cvmAppArmorProfile = apparmorProfileName;

/** The user the engine's `--userns-remap=default` maps container root to. */
export const remapUser = "dockremap";
const remapRangeNeeded = 65536;

const isUbuntu = (os?: OsRelease) => os?.id === "ubuntu";

// ---------------------------------------------------------------- kernel

interface KernelRule {
  runtime: CvmRuntime;
  /** Matches the node's OS; the first rule that matches decides. */
  os: (os?: OsRelease) => boolean;
  minimum: Version;
  why: string;
}

/** Sysbox's published host requirements, and the seed's floor of 5.4 for everything else. */
export const kernelRules: KernelRule[] = [
  {
    runtime: "sysbox",
    os: (os) => isUbuntu(os) && os?.versionId === "20.04",
    minimum: version("5.4"),
    why: "sysbox on Ubuntu 20.04",
  },
  {
    runtime: "sysbox",
    os: (os) => isUbuntu(os) && os?.versionId === "22.04",
    minimum: version("5.15"),
    why: "sysbox on Ubuntu 22.04",
  },
  {
    runtime: "sysbox",
    os: (os) => isUbuntu(os) && os?.versionId === "24.04",
    minimum: version("6.8"),
    why: "sysbox on Ubuntu 24.04",
  },
  { runtime: "sysbox", os: isUbuntu, minimum: version("5.4"), why: "sysbox on Ubuntu" },
  { runtime: "sysbox", os: () => true, minimum: version("5.12"), why: "sysbox on a distribution other than Ubuntu" },
  { runtime: "userns", os: () => true, minimum: version("5.4"), why: "CVMs (the seed's minimum)" },
];

export function kernelMinimum(runtime: CvmRuntime, os?: OsRelease): KernelRule {
  return kernelRules.find((rule) => rule.runtime === runtime && rule.os(os))!;
}

export function judgeKernel(release: string, runtime: CvmRuntime, os?: OsRelease): Verdict {
  const rule = kernelMinimum(runtime, os);
  const minimum = `${rule.minimum.major}.${rule.minimum.minor}`;
  const evidence = `kernel release ${release}; ${rule.why} needs ${minimum} or newer`;
  const parsed = parseVersion(release);
  if (!parsed) return fail(`${evidence}, and "${release}" is not a version`, `Run a kernel ${minimum} or newer.`);
  if (!atLeast(parsed, rule.minimum)) {
    return fail(evidence, `Upgrade the node's kernel to ${minimum} or newer (on Ubuntu: the HWE kernel).`);
  }
  return pass(evidence);
}

// ---------------------------------------------------------------- foreign architectures

/** Whether CVMs can register qemu-user handlers of their own: a warning, not a failure, as CVMs work without. */
export function judgeBinfmtMisc(release: string): Verdict {
  const since = `${binfmtPerUserNamespaceSince.major}.${binfmtPerUserNamespaceSince.minor}`;
  if (binfmtPerUserNamespace(release)) return pass(binfmtNote(true, release).replace("the CVM has", "each CVM has"));
  return warn(
    binfmtNote(false, release),
    `Run kernel ${since} or newer for arm64 and other foreign images in CVMs, or register qemu-user-static handlers with the F flag on the node itself (they then apply to every CVM).`,
  );
}

// ---------------------------------------------------------------- OS

interface SysboxOsRule {
  matches: (os: OsRelease) => boolean;
  status: CheckStatus;
  why: string;
  remedy?: string;
}

const sysboxReleases = ["20.04", "22.04", "24.04"];
const toUserns = "or choose the built-in runtime (userns), which runs on any Linux with user namespaces.";

/** Where sysbox runs: its published Ubuntu releases; never on immutable node OSes it cannot be installed on. */
export const sysboxOsRules: SysboxOsRule[] = [
  {
    matches: (os) => isUbuntu(os) && sysboxReleases.includes(os.versionId),
    status: "pass",
    why: "sysbox supports this release",
  },
  {
    matches: isUbuntu,
    status: "warn",
    why: "sysbox publishes requirements for Ubuntu 20.04, 22.04 and 24.04",
    remedy: "Use an Ubuntu LTS release sysbox supports (20.04, 22.04, 24.04).",
  },
  {
    matches: (os) => ["cos", "bottlerocket", "flatcar", "talos"].includes(os.id),
    status: "fail",
    why: "sysbox cannot be installed on this immutable node OS",
    remedy: `Use Ubuntu nodes (GKE image type UBUNTU_CONTAINERD, EKS amiFamily Ubuntu2204), ${toUserns}`,
  },
  {
    matches: () => true,
    status: "warn",
    why: "sysbox is supported on Ubuntu nodes",
    remedy: `Run sysbox on Ubuntu 20.04, 22.04 or 24.04 nodes, ${toUserns}`,
  },
];

export function judgeOs(os: OsRelease | undefined, runtime: CvmRuntime): Verdict {
  if (!os) {
    const evidence = "neither /etc/os-release nor /usr/lib/os-release exists";
    return runtime === "sysbox"
      ? warn(evidence, "Sysbox is supported on Ubuntu nodes; run the engine on Ubuntu 20.04, 22.04 or 24.04.")
      : pass(evidence);
  }
  if (runtime === "userns") return pass(`${os.source}; the built-in runtime needs only Linux with user namespaces`);
  const rule = sysboxOsRules.find((r) => r.matches(os))!;
  return { status: rule.status, evidence: `${os.source}; ${rule.why}`, remedy: rule.remedy };
}

// ---------------------------------------------------------------- user namespaces

export function judgeUserNamespaces(e: UserNamespaceEvidence): Verdict {
  const read = [
    `/proc/sys/user/max_user_namespaces = ${e.maxUserNamespaces ?? "(absent)"}`,
    e.unprivilegedClone !== undefined ? `kernel.unprivileged_userns_clone = ${e.unprivilegedClone}` : undefined,
    e.apparmorRestrict !== undefined
      ? `kernel.apparmor_restrict_unprivileged_userns = ${e.apparmorRestrict}`
      : undefined,
  ]
    .filter(Boolean)
    .join("; ");
  const limit = Number(e.maxUserNamespaces);
  if (e.maxUserNamespaces === undefined) {
    return fail(read, "Run a kernel built with user namespaces (CONFIG_USER_NS=y).");
  }
  if (!(limit > 0)) return fail(read, "Enable user namespaces: sysctl -w user.max_user_namespaces=65536");
  if (limit < 1024) {
    return warn(
      read,
      "Raise the limit so CVMs (and the namespaces inside them) fit: sysctl -w user.max_user_namespaces=65536",
    );
  }
  if (e.unprivilegedClone === "0") {
    return warn(
      read,
      "Nested user namespaces inside CVMs (rootless tools, systemd sandboxing) are refused: sysctl -w kernel.unprivileged_userns_clone=1",
    );
  }
  return pass(read);
}

// ---------------------------------------------------------------- subordinate ids

const overlaps = (a: SubordinateRange, b: SubordinateRange) =>
  a.start < b.start + b.count && b.start < a.start + a.count;

function judgeOneIdFile(file: string, ranges: SubordinateRange[] | undefined): Verdict {
  if (ranges === undefined) {
    return warn(
      `${file} does not exist`,
      `Create it with a range for ${remapUser}: echo ${remapUser}:100000:65536 >> ${file}`,
    );
  }
  const own = ranges.filter((r) => r.user === remapUser);
  if (own.length === 0) {
    return warn(
      `${file} has no range for ${remapUser} (${ranges.length} other entries)`,
      `The engine adds one when it first starts with --userns-remap=default (it needs useradd); or add it yourself: echo ${remapUser}:100000:65536 >> ${file}`,
    );
  }
  const total = own.reduce((sum, r) => sum + r.count, 0);
  const evidence = `${file}: ${own.map((r) => r.line).join(", ")}`;
  if (total < remapRangeNeeded) {
    return fail(
      `${evidence} (${total} ids, ${remapRangeNeeded} needed)`,
      `Give ${remapUser} ${remapRangeNeeded} ids in ${file}, such as ${remapUser}:100000:65536.`,
    );
  }
  const shared = ranges.filter((other) => other.user !== remapUser && own.some((r) => overlaps(r, other)));
  if (shared.length > 0) {
    return warn(
      `${evidence} overlaps ${shared.map((r) => r.line).join(", ")}`,
      `Give ${remapUser} a range no other user has: root in a CVM would share ids with those users' processes.`,
    );
  }
  return pass(evidence);
}

export function judgeSubordinateIds(e: SubordinateIdEvidence): Verdict {
  const verdicts = [judgeOneIdFile("/etc/subuid", e.subuid), judgeOneIdFile("/etc/subgid", e.subgid)];
  const worst = verdicts.reduce((a, b) => (severity[b.status] > severity[a.status] ? b : a));
  return {
    status: worst.status,
    evidence: verdicts.map((v) => v.evidence).join("; "),
    remedy: worst.remedy,
  };
}

// ---------------------------------------------------------------- cgroups

export type CgroupLayout = "v2" | "hybrid" | "v1" | "none";

export function cgroupLayout(e: CgroupEvidence): CgroupLayout {
  const v1 = e.mounts.some((m) => m.fsType === "cgroup");
  const v2 = e.mounts.some((m) => m.fsType === "cgroup2");
  if (v1 && v2) return "hybrid";
  if (v1) return "v1";
  return v2 ? "v2" : "none";
}

export function judgeCgroupVersion(e: CgroupEvidence): Verdict {
  const layout = cgroupLayout(e);
  const lines = e.mounts.map((m) => m.line).join("\n");
  const hasSystemdHierarchy = e.mounts.some((m) => m.options.split(",").includes("name=systemd"));
  const controllers = e.unifiedControllers === undefined ? "" : `; unified controllers: "${e.unifiedControllers}"`;
  const evidence = `cgroup ${layout}${controllers}\n${lines}`;
  const verdicts: Record<CgroupLayout, () => Verdict> = {
    v2: () => pass(evidence),
    hybrid: () => pass(evidence),
    v1: () =>
      hasSystemdHierarchy
        ? pass(evidence)
        : warn(
            evidence,
            "Mount the name=systemd hierarchy (or boot with cgroup v2) so systemd inside CVMs finds its cgroup.",
          ),
    none: () =>
      fail("no cgroup or cgroup2 filesystem in /proc/self/mounts", "Mount cgroups (cgroup v2 at /sys/fs/cgroup)."),
  };
  return verdicts[layout]();
}

export function judgeCgroupDelegation(attempts: DelegationAttempt[]): Verdict {
  if (attempts.length === 0) return fail("no cgroup hierarchy to try", "Mount cgroups (cgroup v2 at /sys/fs/cgroup).");
  const evidence = attempts.map((a) => `${a.hierarchy}: ${a.outcome}`).join("\n");
  if (attempts.every((a) => a.ok)) return pass(evidence);
  return fail(
    evidence,
    "cvm hands each CVM's cgroup to its remapped root: run the server as root with /sys/fs/cgroup writable (not mounted read-only).",
  );
}

// ---------------------------------------------------------------- overlay in a user namespace

export function judgeOverlay(attempt: OverlayAttempt): Verdict {
  if (attempt.ok) return pass(`${attempt.command}: mounted`);
  return fail(
    `${attempt.command}: ${attempt.output}`,
    "The Docker inside CVMs needs overlay mounts in a user namespace: run a kernel 5.11 or newer (or Ubuntu's, which has had it since 5.4).",
  );
}

// ---------------------------------------------------------------- the engine

const engineMinimum = version("20.10");

export function judgeEngine(e: EngineEvidence): Verdict {
  if (e.error !== undefined) {
    return fail(
      `${e.host}: ${e.error}`,
      `Start the Docker engine, or point cvm at it with --docker-host (${defaultDockerHost} by default).`,
    );
  }
  const evidence = `${e.host}: Docker Engine ${e.version} (API ${e.apiVersion}); runtimes ${e.runtimes?.join(", ")}; default ${e.defaultRuntime}; cgroup ${e.cgroupDriver} v${e.cgroupVersion}; data root ${e.dockerRootDir}`;
  const parsed = parseVersion(e.version ?? "");
  if (!parsed || !atLeast(parsed, engineMinimum)) {
    return warn(evidence, "Upgrade the engine to Docker 20.10 or newer.");
  }
  return pass(evidence);
}

export function judgeIsolationRuntime(e: EngineEvidence, context: Pick<LocalContext, "choice" | "runtime">): Verdict {
  const registered = e.runtimes ?? [];
  const evidence = `settings: ${context.choice}; engine runtimes: ${registered.join(", ") || "(engine unreachable)"}`;
  if (context.runtime === "userns") {
    return pass(
      `${evidence}; CVMs use the built-in runtime (a user-namespace-remapped engine)${context.choice === "auto" ? ": no sysbox-runc registered" : ""}`,
    );
  }
  if (registered.includes("sysbox-runc")) return pass(`${evidence}; sysbox-runc is registered`);
  return fail(
    `${evidence}; sysbox-runc is not registered`,
    "Install sysbox on this (Ubuntu) node so the engine registers sysbox-runc, or set the runtime to userns or auto.",
  );
}

// ---------------------------------------------------------------- AppArmor, SELinux

const apparmorOn = (e: SecurityModuleEvidence) => e.apparmorEnabled === "Y";

export function securityModuleWords(e: SecurityModuleEvidence): string {
  return [
    `/sys/module/apparmor/parameters/enabled: ${e.apparmorEnabled ?? "(absent)"}`,
    `/sys/fs/selinux/enforce: ${e.selinuxEnforce ?? "(absent)"}`,
  ].join("; ");
}

export function judgeSecurityModule(e: SecurityModuleEvidence, runtime: CvmRuntime): Verdict {
  const evidence = securityModuleWords(e);
  if (apparmorOn(e) && !e.apparmorParser) {
    return fail(
      `${evidence}; apparmor_parser not found on PATH`,
      "Install apparmor (apparmor_parser): with AppArmor on, the engine refuses to start containers without it.",
    );
  }
  if (e.selinuxEnforce === "1" && runtime === "userns") {
    return warn(
      `${evidence}; SELinux is enforcing`,
      "cvm ships no SELinux policy for CVMs: if the inner dockerd's mounts are denied (ausearch -m avc), label CVMs with spc_t or set SELinux permissive.",
    );
  }
  return pass(evidence);
}

export function judgeAppArmorProfile(e: AppArmorProfileEvidence): Verdict {
  if (!apparmorOn(e)) return notApplicable(`${securityModuleWords(e)}; AppArmor is off, so no profile is needed`);
  if (e.apparmorProfiles === undefined) {
    return warn(
      "AppArmor is enabled but /sys/kernel/security/apparmor/profiles cannot be read",
      "Mount securityfs (mount -t securityfs securityfs /sys/kernel/security) so the loaded profiles can be checked.",
    );
  }
  const line = e.apparmorProfiles.split("\n").find((l) => l.startsWith(`${cvmAppArmorProfile} `));
  if (line) return pass(`/sys/kernel/security/apparmor/profiles: ${line}`);
  const count = e.apparmorProfiles.split("\n").filter(Boolean).length;
  const missing = `AppArmor is enabled and ${cvmAppArmorProfile} is not among the ${count} loaded profiles`;
  const remedy =
    "Install apparmor (apparmor_parser, with its abstractions) so the supervisor can load cvm's profile for CVMs: Docker's default profile denies the mounts an inner dockerd needs.";
  if (!e.apparmorParser) return fail(`${missing}, and apparmor_parser is not installed to load it`, remedy);
  if (!e.compile?.ok) {
    return fail(`${missing}, and it does not compile here: ${e.compile?.output ?? "(not tried)"}`, remedy);
  }
  // The supervisor loads the profile before it starts the first CVM; compiling it proves it can.
  return pass(`${missing} yet; ${e.compile.command} compiles it, and the supervisor loads it before the first CVM`);
}

// ---------------------------------------------------------------- disk

const gib = 1024 ** 3;
export const diskWarnBelow = 20 * gib;
export const diskFailBelow = 5 * gib;

export function judgeDisk(e: DiskEvidence): Verdict {
  if (e.error !== undefined || e.freeBytes === undefined) {
    return warn(
      `statfs ${e.path}: ${e.error}`,
      "Run cvm doctor on the engine's machine so its data root can be measured.",
    );
  }
  const evidence = `statfs ${e.path}: ${(e.freeBytes / gib).toFixed(1)} GiB free of ${((e.totalBytes ?? 0) / gib).toFixed(1)} GiB`;
  const remedy = `Free space under ${e.path} (docker image prune) or give it a larger disk: environment images and their Docker data live there.`;
  if (e.freeBytes < diskFailBelow) return fail(evidence, remedy);
  if (e.freeBytes < diskWarnBelow) return warn(evidence, remedy);
  return pass(evidence);
}

/** Every place images land (the host engine's data root, cvm's own engine under its data directory): the fullest decides. */
export function judgeDisks(disks: DiskEvidence[]): Verdict {
  const verdicts = disks.map(judgeDisk);
  const worst = verdicts.reduce((a, b) => (severity[b.status] > severity[a.status] ? b : a));
  return { status: worst.status, evidence: verdicts.map((v) => v.evidence).join("\n"), remedy: worst.remedy };
}

/** A data directory not created yet is measured where it will be. */
function nearestExisting(path: string): string {
  let current = path;
  while (!existsSync(current) && dirname(current) !== current) current = dirname(current);
  return current;
}

// ---------------------------------------------------------------- the table

const forUserns = (context: LocalContext) => context.runtime === "userns";

export const localChecks: AnyCheck<LocalContext>[] = [
  defineCheck({
    id: "kernel",
    title: "Kernel version",
    read: async () => readKernelRelease(),
    judge: (release, context) => judgeKernel(release, context.runtime, context.os),
  }),
  defineCheck({
    id: "binfmt-misc",
    title: "Foreign architectures in CVMs (binfmt_misc per user namespace)",
    applies: forUserns,
    read: async () => readKernelRelease(),
    judge: (release) => judgeBinfmtMisc(release),
  }),
  defineCheck({
    id: "os",
    title: "Operating system",
    read: async (context) => context.os,
    judge: (os, context) => judgeOs(os, context.runtime),
  }),
  defineCheck({
    id: "user-namespaces",
    title: "User namespaces enabled",
    read: readUserNamespaces,
    judge: judgeUserNamespaces,
  }),
  defineCheck({
    id: "subordinate-ids",
    title: `Subordinate id range for ${remapUser}`,
    applies: forUserns,
    read: readSubordinateIds,
    judge: judgeSubordinateIds,
  }),
  defineCheck({
    id: "cgroup-version",
    title: "cgroup version",
    read: readCgroups,
    judge: judgeCgroupVersion,
  }),
  defineCheck({
    id: "cgroup-delegation",
    title: "cgroup delegation to a CVM's root",
    applies: forUserns,
    read: async () => {
      const { mounts } = await readCgroups();
      const ids = await readSubordinateIds();
      const owner = ids.subuid?.find((r) => r.user === remapUser)?.start ?? 100000;
      return tryCgroupDelegation(mounts, owner);
    },
    judge: judgeCgroupDelegation,
  }),
  defineCheck({
    id: "overlay-in-userns",
    title: "overlay mounts inside a user namespace",
    applies: forUserns,
    read: tryOverlayInUserNamespace,
    judge: judgeOverlay,
  }),
  defineCheck({
    id: "engine",
    title: "Container engine",
    read: async (context) => context.engine,
    judge: judgeEngine,
  }),
  defineCheck({
    id: "isolation-runtime",
    title: "Isolation runtime",
    read: async (context) => context.engine,
    judge: (engine, context) => judgeIsolationRuntime(engine, context),
  }),
  defineCheck({
    id: "security-module",
    title: "AppArmor / SELinux",
    read: readSecurityModules,
    judge: (e, context) => judgeSecurityModule(e, context.runtime),
  }),
  defineCheck({
    id: "apparmor-profile",
    title: `AppArmor profile ${cvmAppArmorProfile} loaded`,
    applies: forUserns,
    read: readAppArmorProfile,
    judge: judgeAppArmorProfile,
  }),
  defineCheck({
    id: "disk",
    title: "Free disk for images",
    read: async (context) => {
      const paths = [context.engine.dockerRootDir ?? "/var/lib/docker", context.dataDir].filter(
        (p): p is string => p !== undefined,
      );
      return Promise.all([...new Set(paths)].map((p) => readDiskFree(nearestExisting(p))));
    },
    judge: judgeDisks,
  }),
];

export interface LocalCheckOptions {
  choice: RuntimeChoice;
  dataDir?: string;
  dockerHost?: string;
}

export async function runLocalChecks(options: LocalCheckOptions, onProgress?: OnCheckProgress): Promise<CheckResult[]> {
  // Reading the engine is what takes longest on a busy machine; the page says so rather than only "starting".
  onProgress?.({ type: "running", id: "engine-facts", title: "what the container engine has" });
  const engine = await readEngine(dockerHostOf(options.dockerHost));
  const context: LocalContext = {
    choice: options.choice,
    dataDir: options.dataDir,
    runtime: resolveRuntime(options.choice, engine.runtimes),
    engine,
    os: await readOsRelease(),
  };
  return runChecks(localChecks, context, onProgress);
}
