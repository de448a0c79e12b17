/**
 * The API's request and response shapes, shared by the server's routes, the
 * typed client, the CLI, the dashboard and the tests. Paths are relative to
 * /api/v1.
 */

import type { AuditEntry, Page } from "../core/audit.js";
import type { Build, BuildLogLine } from "../core/build.js";
import type { Environment, EnvironmentSpec, RegistryCredentials } from "../core/environment.js";
import type { Role } from "../core/roles.js";
import type { InfrastructureSettings } from "../core/settings.js";
import type { Token, User } from "../core/user.js";

export const apiPrefix = "/api/v1";

/** The cookie the dashboard's session rides in; the CLI sends `Authorization: Bearer`. */
export const sessionCookie = "cvm_session";

/** GET /setup: whether this install still needs its first account. */
export interface SetupStatus {
  needsFirstAdmin: boolean;
  /** Whether CVMs may be created now; public so a member's create form can offer the option. */
  cvmEnabled?: boolean;
}

/** POST /setup/first-admin, POST /auth/login */
export interface Credentials {
  email: string;
  password: string;
  name?: string;
}

export interface SessionResponse {
  user: User;
  /** The secret; shown once, never stored in the clear. */
  token: string;
  expiresAt: string;
}

/** POST /tokens */
export interface CreateTokenRequest {
  name: string;
  /** Days until it expires: 1 to 365, default 30. */
  ttlDays?: number;
}

export interface CreatedToken {
  token: Token;
  secret: string;
}

/** POST /users (admin) */
export interface CreateUserRequest {
  email: string;
  password: string;
  role: Role;
  name?: string;
}

/** PATCH /users/:id (admin; a manager may not change roles) */
export interface UpdateUserRequest {
  role?: Role;
  active?: boolean;
  name?: string;
}

/** PUT /settings/infrastructure: the whole document, or any part of it. */
export type InfrastructureSettingsUpdate = Partial<Omit<InfrastructureSettings, "limits" | "supervisorPrivileges">> & {
  limits?: Partial<InfrastructureSettings["limits"]>;
  supervisorPrivileges?: Partial<InfrastructureSettings["supervisorPrivileges"]>;
  /** Turn CVMs on even though infrastructure checks fail; the audit log records it. */
  force?: boolean;
};

export type CheckStatus = "pass" | "warn" | "fail";

/** One infrastructure check's result (GET /settings/infrastructure/checks, `cvm doctor`). */
export interface CheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  evidence: string;
  remedy?: string;
}

export interface ChecksResponse {
  checks: CheckResult[];
  worst: CheckStatus;
}

/** GET /audit?actor=&action=&target=&since=&until=&limit=&cursor= */
export type AuditPage = Page<AuditEntry>;

/** POST /environments */
export type CreateEnvironmentRequest = Partial<EnvironmentSpec> & {
  name: string;
  image: string;
  registryCredentials?: RegistryCredentials;
};

/** GET /environments?owner=me|all|<userId>&state=&kind=cvm|standard&name= */
export interface EnvironmentList {
  items: Environment[];
}

/** POST /environments/:ref/rebuild */
export interface RebuildRequest {
  /** Keep the inner Docker's images and containers (CVMs). */
  keepDockerData?: boolean;
}

/**
 * GET /environments/:ref/logs?build=<id>|latest&after=<seq>&follow=1
 * answers application/x-ndjson: one BuildLogLine per line, then, when the
 * build is over, a final `{"end": true, "outcome": ...}` line.
 */
export type LogStreamItem = BuildLogLine | { end: true; outcome: Build["outcome"] };

/** GET /environments/:ref/builds */
export interface BuildList {
  items: Build[];
}

/** GET /events (application/x-ndjson): environment changes as they happen, for live lists. */
export type EnvironmentEvent =
  | { type: "environment"; environment: Environment }
  | { type: "deleted"; id: string }
  | { type: "heartbeat"; at: string };

/**
 * WS /environments/:ref/terminal?tty=1&cols=80&rows=24&command=<JSON string[]>
 * Binary frames carry bytes, the first byte naming the stream:
 * 0 stdin (client to server), 1 stdout, 2 stderr.
 * Text frames carry control messages as JSON.
 */
export const terminalStream = { stdin: 0, stdout: 1, stderr: 2 } as const;

export type TerminalClientMessage = { type: "resize"; cols: number; rows: number } | { type: "eof" };
export type TerminalServerMessage = { type: "exit"; code: number } | { type: "error"; message: string };

/** POST /admin/reconcile?removeOrphans=1 */
export interface ReconcileReport {
  /** Environments whose workload had vanished, now marked failed with the reason. */
  vanished: { id: string; name: string; reason: string }[];
  /** Workloads with cvm's labels and no environment. */
  orphans: { ref: string; environmentId: string; removed: boolean }[];
}
