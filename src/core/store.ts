/**
 * What the server keeps, as one interface. `src/store` implements it on SQLite
 * (the embedded default) and PostgreSQL (several server replicas); the server
 * never knows which.
 */

import type { AuditEntry, AuditFilter, Page } from "./audit.js";
import type { Build, BuildLogLine } from "./build.js";
import type { Environment, EnvironmentSummary, RegistryCredentials } from "./environment.js";
import type { PortShare, SharedPort } from "./ports.js";
import type { Role } from "./roles.js";
import type { InfrastructureSettings } from "./settings.js";
import type { Token, TokenKind, User } from "./user.js";

/** A page of a list: at most `limit` items, after the item `cursor` names (a previous page's `nextCursor`). */
export interface PageRequest {
  limit: number;
  cursor?: string;
}

export interface NewUser {
  email: string;
  name: string;
  role: Role;
  passwordHash: string;
}

export interface UserStore {
  /** Creates a user; the first one on an empty store gets the role given, and a duplicate email is a 409. */
  create(user: NewUser): Promise<User>;
  /**
   * Creates the first user only if there is none, atomically; returns undefined
   * when another account already exists (two first-run requests race).
   */
  createFirst(user: NewUser): Promise<User | undefined>;
  get(id: string): Promise<User | undefined>;
  getByEmail(email: string): Promise<(User & { passwordHash: string }) | undefined>;
  /** Oldest first. */
  page(filter: UserFilter, page: PageRequest): Promise<Page<User>>;
  count(filter?: UserFilter): Promise<number>;
  update(id: string, patch: Partial<Pick<User, "role" | "active" | "name">>): Promise<User>;
}

export interface UserFilter {
  role?: Role;
  active?: boolean;
  /** The whole address, in any case. */
  email?: string;
}

export interface NewToken {
  userId: string;
  kind: TokenKind;
  name: string;
  secretHash: string;
  expiresAt: string;
  /** Where the request that created it came from, as Token records it. */
  userAgent?: string;
  address?: string;
}

export interface TokenStore {
  create(token: NewToken): Promise<Token>;
  /** The token whose secret hashes to this, if it exists at all (expired and revoked included). */
  findBySecretHash(secretHash: string): Promise<Token | undefined>;
  listForUser(userId: string): Promise<Token[]>;
  revoke(id: string, at: string): Promise<void>;
  /** Revokes every live token of a user (deactivation); answers how many. */
  revokeForUser(userId: string, at: string): Promise<number>;
  touch(id: string, at: string): Promise<void>;
  /** These tokens and their users as stored now, in one read (open connections are re-checked with it). */
  sessions(ids: readonly string[]): Promise<{ token: Token; user: User }[]>;
}

/** Failed sign-ins counted under one key (`account:<email>`, `address:<ip>`). */
export interface ThrottleState {
  failures: number;
  lockedUntil?: string;
}

export interface LoginThrottleStore {
  /** The state of each key that has one. */
  get(keys: readonly string[]): Promise<Map<string, ThrottleState>>;
  /**
   * Counts one failure, starting afresh when the last one was before
   * `forgetBefore`, and locks the key for `lockMs(failures)` from `at`.
   * Atomic, so replicas counting at once lose no failure.
   */
  fail(key: string, at: string, forgetBefore: string, lockMs: (failures: number) => number): Promise<ThrottleState>;
  clear(key: string): Promise<void>;
}

export interface SettingsStore {
  /** The stored settings, or undefined before any were saved. */
  getInfrastructure(): Promise<InfrastructureSettings | undefined>;
  putInfrastructure(settings: InfrastructureSettings): Promise<void>;
  /** A value kept under its own key (the setup code), or undefined. */
  getValue(key: string): Promise<string | undefined>;
  /** Stores the value unless the key has one already; answers the value stored (so replicas agree on one). */
  putValueIfAbsent(key: string, value: string): Promise<string>;
  removeValue(key: string): Promise<void>;
}

export interface AuditStore {
  append(entry: Omit<AuditEntry, "id">): Promise<AuditEntry>;
  /** Newest first. */
  list(filter: AuditFilter, page: PageRequest): Promise<Page<AuditEntry>>;
}

export interface EnvironmentFilter {
  ownerId?: string;
  state?: string;
  cvm?: boolean;
  name?: string;
  /** Part of the name. */
  nameContains?: string;
}

export type EnvironmentPatch = Partial<
  Pick<
    Environment,
    | "state"
    | "stateReason"
    | "runtime"
    | "systemd"
    | "failedUnits"
    | "docker"
    | "buildId"
    | "image"
    | "cpu"
    | "memoryGiB"
    | "diskGiB"
    | "timeline"
  >
>;

export interface EnvironmentStore {
  /** Inserts; a second environment with the same owner and name is a 409 naming the field. */
  create(environment: Environment, credentials?: RegistryCredentials): Promise<Environment>;
  get(id: string): Promise<Environment | undefined>;
  getByOwnerAndName(ownerId: string, name: string): Promise<Environment | undefined>;
  /** Every one that matches, for the server's own sweeps (reconcile, replicas' change polls). */
  list(filter: EnvironmentFilter): Promise<Environment[]>;
  /** Newest first, a page at a time, without timelines: what people and the API list. */
  page(filter: EnvironmentFilter, page: PageRequest): Promise<Page<EnvironmentSummary>>;
  countByState(): Promise<Record<string, number>>;
  /**
   * Applies the patch only if the stored version is still `expectedVersion`,
   * and bumps the version; returns undefined when another writer got there
   * first. This is what keeps two servers from both starting one environment.
   */
  update(id: string, expectedVersion: number, patch: EnvironmentPatch): Promise<Environment | undefined>;
  registryCredentials(id: string): Promise<RegistryCredentials | undefined>;
  /** Every environment's stored registry credentials (re-encrypting them under a new key). */
  listRegistryCredentials(): Promise<{ environmentId: string; credentials: RegistryCredentials }[]>;
  replaceRegistryCredentials(id: string, credentials: RegistryCredentials): Promise<void>;
  remove(id: string): Promise<void>;
}

export interface BuildStore {
  create(environmentId: string, at: string): Promise<Build>;
  get(id: string): Promise<Build | undefined>;
  listForEnvironment(environmentId: string): Promise<Build[]>;
  finish(id: string, outcome: NonNullable<Build["outcome"]>, at: string): Promise<void>;
  appendLog(buildId: string, text: string, at: string): Promise<BuildLogLine>;
  /** Lines with seq greater than afterSeq, in order. */
  logs(buildId: string, afterSeq?: number): Promise<BuildLogLine[]>;
  /** Durations in seconds of finished builds, for /metrics. */
  durations(): Promise<{ outcome: string; seconds: number }[]>;
}

/** What makes an environment a workspace, per environment: its shared ports and its own idle stop. */
export interface WorkspaceStore {
  /** The ports shared beyond their owner; a port not listed is private. */
  portShares(environmentId: string): Promise<SharedPort[]>;
  /** Sets a port's share; `private` removes it from the list. */
  setPortShare(environmentId: string, port: number, share: PortShare, at: string): Promise<void>;
  /** The environment's own idle stop in minutes (0: never), or undefined for the site's default. */
  idleStopMinutes(environmentId: string): Promise<number | undefined>;
  setIdleStopMinutes(environmentId: string, minutes: number | undefined, at: string): Promise<void>;
  /** When any server last saw the environment used (a terminal, SSH, a forwarded connection). */
  lastActiveAt(environmentId: string): Promise<string | undefined>;
  /** Records use; an earlier time than the one stored changes nothing. */
  recordActivity(environmentId: string, at: string): Promise<void>;
}

export interface Store {
  /**
   * Whether this server is the only one writing to the store (SQLite in its
   * own data dir). Then an unfinished build that no build of this process runs
   * was interrupted, and nothing changes behind the server's back; with a
   * shared store (PostgreSQL, several replicas) either may be another server's work.
   */
  readonly soleWriter: boolean;
  users: UserStore;
  tokens: TokenStore;
  settings: SettingsStore;
  audit: AuditStore;
  environments: EnvironmentStore;
  builds: BuildStore;
  workspace: WorkspaceStore;
  loginThrottle: LoginThrottleStore;
  /**
   * Writes a consistent copy of the whole store to `file` while it is in use
   * (SQLite's online backup); PostgreSQL answers a 409 naming pg_dump.
   */
  backup(file: string): Promise<void>;
  close(): Promise<void>;
}
