/**
 * Records with every field filled in, for tests and benchmarks across the
 * project (unit tests beside their modules, test/, bench/): a test names only
 * the fields it is about, and a field added to a record is added here once
 * (after Coder's dbgen). Plain data, no I/O: the store and the providers take
 * these as they would take the server's own.
 */

import type { Build } from "../core/build.js";
import type { Environment, EnvironmentState, RegistryCredentials } from "../core/environment.js";
import type { BuildContext, Observation } from "../core/provider.js";
import { defaultSettings, type InfrastructureSettings } from "../core/settings.js";
import type { NewUser } from "../core/store.js";
import type { User } from "../core/user.js";
import { newMember, type PoolMember, type WarmPool } from "../core/warm-pool.js";
import { newId } from "../store/ids.js";

let counter = 0;
const now = () => new Date().toISOString();

/** Who an environment belongs to: a user, or any record with an id and an email. */
export type Owner = Pick<User, "id" | "email">;

/**
 * An environment as the server keeps it: a standard one (a CVM when `cvm` is
 * true, on the built-in runtime), queued, with a timeline that begins in its
 * state. `owner` fills the owner's id and email.
 */
export function environment(overrides: Partial<Environment> & { owner?: Owner } = {}): Environment {
  counter += 1;
  const { owner, ...fields } = overrides;
  const at = fields.createdAt ?? now();
  const state: EnvironmentState = fields.state ?? "queued";
  return {
    id: newId("env"),
    ownerId: owner?.id ?? "usr_owner",
    ownerEmail: owner?.email ?? "owner@example.com",
    name: `env-${counter}`,
    image: "debian:12",
    cvm: false,
    cpu: 1,
    memoryGiB: 1,
    diskGiB: 1,
    state,
    runtime: fields.cvm ? "userns" : "none",
    systemd: "unknown",
    failedUnits: [],
    docker: "unknown",
    timeline: [{ state, at }],
    createdAt: at,
    updatedAt: at,
    version: 1,
    ...fields,
  };
}

/** A user as the store returns it: an active member. */
export function user(overrides: Partial<User> = {}): User {
  counter += 1;
  return {
    id: newId("usr"),
    email: `user${counter}@example.com`,
    name: `user${counter}`,
    role: "member",
    active: true,
    createdAt: now(),
    ...overrides,
  };
}

/** What `store.users.create` takes: a member with a placeholder hash (nobody signs in with it). */
export function newUser(overrides: Partial<NewUser> = {}): NewUser {
  counter += 1;
  const email = overrides.email ?? `user${counter}@example.com`;
  return { email, name: email.split("@")[0], role: "member", passwordHash: `hash-of-${email}`, ...overrides };
}

/** A build that has just begun. */
export function build(overrides: Partial<Build> = {}): Build {
  return { id: newId("bld"), environmentId: newId("env"), startedAt: now(), ...overrides };
}

/** The defaults with some settings changed; `limits` and `supervisorPrivileges` merge into the defaults'. */
export function settings(
  overrides: Partial<Omit<InfrastructureSettings, "limits" | "supervisorPrivileges" | "quotas" | "network">> & {
    limits?: Partial<InfrastructureSettings["limits"]>;
    supervisorPrivileges?: Partial<InfrastructureSettings["supervisorPrivileges"]>;
    quotas?: Partial<InfrastructureSettings["quotas"]>;
    network?: Partial<InfrastructureSettings["network"]>;
  } = {},
): InfrastructureSettings {
  const { limits, supervisorPrivileges, quotas, network, ...rest } = overrides;
  return {
    ...defaultSettings,
    ...rest,
    limits: { ...defaultSettings.limits, ...limits },
    supervisorPrivileges: { ...defaultSettings.supervisorPrivileges, ...supervisorPrivileges },
    quotas: { ...defaultSettings.quotas, ...quotas },
    network: { ...defaultSettings.network, ...network },
  };
}

/** A warm pool an admin set: two CVMs of 2 CPUs, 4 GiB and a 20 GiB disk of a registry image, unless told otherwise. */
export function warmPool(overrides: Partial<WarmPool> = {}): WarmPool {
  return { image: "registry.example.com/cvm/dev:1", cpu: 2, memoryGiB: 4, diskGiB: 20, count: 2, ...overrides };
}

/** A member of the pool, as a provider records it: ready, built under the automatic runtime, its own id. */
export function poolMember(of: WarmPool = warmPool(), overrides: Partial<PoolMember> = {}): PoolMember {
  counter += 1;
  // Distinct and in the order made, so "newest first" is well defined.
  const createdAt = new Date(Date.UTC(2026, 0, 1) + counter * 1000).toISOString();
  const built = { runtime: "auto", lxcfs: true, fuseDevice: true, tunDevice: true } as const;
  return { ...newMember(of, newId("env"), built, createdAt), imageVersion: "sha256:1", state: "ready", ...overrides };
}

/** What a provider reports of a workload that runs (a standard environment's, unless told otherwise). */
export function observation(overrides: Partial<Observation> = {}): Observation {
  return {
    exists: true,
    running: true,
    runtime: "none",
    systemd: "unavailable",
    failedUnits: [],
    docker: "absent",
    ...overrides,
  };
}

/** A build context that keeps what a provider told the server, as the server would record it. */
export interface RecordingContext extends BuildContext {
  /** The build log's lines, in order. */
  lines: string[];
  /** The build states the provider entered, in order. */
  states: EnvironmentState[];
  /** Lines and states together, each with the milliseconds since the context was made (`[state] pulling`). */
  timeline: string[];
}

export interface RecordingOptions {
  settings?: InfrastructureSettings;
  credentials?: RegistryCredentials;
  signal?: AbortSignal;
  /** Called with each line and state as it comes (echo it, time it). */
  onLine?: (text: string) => void;
}

/**
 * The server's side of a build, for a provider's tests: a test double for the
 * server, not a stand-in for what is tested. Default settings unless given.
 */
export function recordingContext(options: RecordingOptions = {}): RecordingContext {
  const lines: string[] = [];
  const states: EnvironmentState[] = [];
  const timeline: string[] = [];
  const begun = performance.now();
  const record = (text: string) => {
    timeline.push(`+${String(Math.round(performance.now() - begun)).padStart(5)} ms  ${text}`);
    options.onLine?.(text);
  };
  return {
    settings: options.settings ?? defaultSettings,
    credentials: options.credentials,
    signal: options.signal ?? new AbortController().signal,
    lines,
    states,
    timeline,
    async log(text) {
      lines.push(text);
      record(text);
    },
    async enter(state) {
      states.push(state);
      record(`[state] ${state}`);
    },
  };
}
