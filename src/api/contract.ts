/**
 * The API's request and response types, shared by the server's routes, the
 * typed client, the CLI, the dashboard and the tests. Each is inferred from
 * its zod schema in ./schemas.ts (requests as the client writes them, answers
 * as the server sends them), so no shape is written twice. Only types are
 * imported from there: the dashboard and the CLI import this module without
 * loading zod, so the enumerations the API adds are const arrays here.
 * Paths are relative to /api/v1.
 */

import type { z } from "zod";
import type {
  auditPageSchema,
  auditQuerySchema,
  buildInfoSchema,
  buildListSchema,
  checkProgressSchema,
  checkResultSchema,
  checksSchema,
  createdTokenSchema,
  createEnvironmentSchema,
  createTokenSchema,
  createUserSchema,
  environmentEventSchema,
  environmentListSchema,
  environmentQuerySchema,
  firstAdminSchema,
  loginSchema,
  logStreamItemSchema,
  poolsStatusSchema,
  poolUpdateSchema,
  rebuildSchema,
  reconcileReportSchema,
  sessionSchema,
  settingsUpdateSchema,
  setupStatusSchema,
  terminalClientMessageSchema,
  terminalServerMessageSchema,
  tokenListSchema,
  updateUserSchema,
  userListSchema,
  userQuerySchema,
} from "./schemas.js";

export const apiPrefix = "/api/v1";

/** A query string as the client writes it: what the server coerces to a number (limits, sizes) is a number. */
type QueryOf<S extends z.ZodType> = {
  [K in keyof z.input<S>]: unknown extends z.input<S>[K] ? number | undefined : z.input<S>[K];
};

/** A page of a list, and how to ask for the next: its `nextCursor` as the next request's `cursor`. */
export interface PageQuery {
  limit?: number;
  cursor?: string;
}

/** The cookie the dashboard's session rides in; the CLI sends `Authorization: Bearer`. */
export const sessionCookie = "cvm_session";

/** GET /buildinfo: which cvm the server is. */
export type BuildInfo = z.output<typeof buildInfoSchema>;

/** GET /setup: whether this install still needs its first account. */
export type SetupStatus = z.output<typeof setupStatusSchema>;
/** POST /setup/first-admin: the first account's credentials and the setup code from the server's log. */
export type FirstAdminRequest = z.input<typeof firstAdminSchema>;
/** POST /auth/login */
export type LoginRequest = z.input<typeof loginSchema>;
export type SessionResponse = z.output<typeof sessionSchema>;

/** POST /tokens */
export type CreateTokenRequest = z.input<typeof createTokenSchema>;
export type CreatedToken = z.output<typeof createdTokenSchema>;
/** GET /tokens */
export type TokenList = z.output<typeof tokenListSchema>;

/** POST /users (admin) */
export type CreateUserRequest = z.input<typeof createUserSchema>;
/** PATCH /users/:id (admin; a manager may not change roles) */
export type UpdateUserRequest = z.input<typeof updateUserSchema>;
/** GET /users?email=&limit=&cursor= (oldest first) */
export type UserQuery = QueryOf<typeof userQuerySchema>;
export type UserList = z.output<typeof userListSchema>;

/** PUT /settings/infrastructure: the whole document, or any part of it. */
export type InfrastructureSettingsUpdate = z.input<typeof settingsUpdateSchema>;

/** `not-applicable`: the check concerns something this installation does not have (a profile where AppArmor is off). */
export const checkStatuses = ["pass", "warn", "fail", "not-applicable"] as const;
export type CheckStatus = (typeof checkStatuses)[number];
/** One infrastructure check's result (GET /settings/infrastructure/checks, `cvm doctor`). */
export type CheckResult = z.output<typeof checkResultSchema>;
export type ChecksResponse = z.output<typeof checksSchema>;
/** GET /settings/infrastructure/checks/progress (application/x-ndjson): the same checks, told as they run. */
export type CheckProgress = z.output<typeof checkProgressSchema>;

/** GET /pools: each warm pool set, its members now, and what they hold (admins and managers). */
export type PoolsStatus = z.output<typeof poolsStatusSchema>;
/** PUT /pools: one pool set; a count of 0 removes it. */
export type PoolUpdateRequest = z.input<typeof poolUpdateSchema>;

/** GET /audit?actor=&action=&target=&since=&until=&limit=&cursor= (newest first) */
export type AuditQuery = QueryOf<typeof auditQuerySchema>;
export type AuditPage = z.output<typeof auditPageSchema>;

/** GET /environments?owner=me|all|<userId>&state=&kind=cvm|standard&name=&q=&limit=&cursor= (newest first) */
export type EnvironmentQuery = QueryOf<typeof environmentQuerySchema>;
export type EnvironmentList = z.output<typeof environmentListSchema>;
/** POST /environments */
export type CreateEnvironmentRequest = z.input<typeof createEnvironmentSchema>;
/** POST /environments/:ref/rebuild */
export type RebuildRequest = z.input<typeof rebuildSchema>;
/** GET /environments/:ref/builds */
export type BuildList = z.output<typeof buildListSchema>;

/**
 * GET /environments/:ref/logs?build=<id>|latest&after=<seq>&follow=1
 * answers application/x-ndjson: one BuildLogLine per line, then, when the
 * build is over, a final `{"end": true, "outcome": ...}` line.
 */
export type LogStreamItem = z.output<typeof logStreamItemSchema>;

/** GET /events (application/x-ndjson): environment changes as they happen, for live lists. */
export type EnvironmentEvent = z.output<typeof environmentEventSchema>;

/**
 * WS /environments/:ref/terminal?tty=1&cols=80&rows=24&command=<JSON string[]>
 * Binary frames carry bytes, the first byte naming the stream:
 * 0 stdin (client to server), 1 stdout, 2 stderr.
 * Text frames carry control messages as JSON.
 */
export const terminalStream = { stdin: 0, stdout: 1, stderr: 2 } as const;

/** The host name suffix of environments in ~/.ssh/config: `ssh NAME.cvm`. */
export const sshHostSuffix = ".cvm";

/**
 * The upgrade `cvm port-forward` asks for on /environments/:ref/ports/:port/connect:
 * after the 101 the connection carries the TCP stream's bytes as they are,
 * no framing, so the server can hand the socket itself to the provider
 * (spliced in the kernel). A WebSocket upgrade there carries them in binary frames.
 */
export const rawUpgrade = "cvm-tcp";

export type TerminalClientMessage = z.input<typeof terminalClientMessageSchema>;
export type TerminalServerMessage = z.output<typeof terminalServerMessageSchema>;

/** POST /admin/reconcile?removeOrphans=1 */
export type ReconcileReport = z.output<typeof reconcileReportSchema>;
