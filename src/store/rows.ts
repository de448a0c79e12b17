/**
 * Rows as both back ends return them, and the domain objects they stand for.
 * SQLite has no booleans (0/1) and both keep JSON and times as text, so the
 * mapping is the one place that knows.
 */

import type { AuditEntry } from "../core/audit.js";
import type { Build, BuildLogLine } from "../core/build.js";
import type { Environment, EnvironmentSummary } from "../core/environment.js";
import type { Role } from "../core/roles.js";
import type { Token, TokenKind, User } from "../core/user.js";
import type { SqlValue } from "./database.js";

const truthy = (value: unknown): boolean => value === true || value === 1;
const optional = <T>(value: T | null | undefined): T | undefined => (value === null ? undefined : value);
const fromJson = (value: unknown): unknown =>
  value === null || value === undefined ? undefined : JSON.parse(String(value));
/** JSON text, or NULL for undefined (which JSON cannot hold). */
export const toJson = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value));

export interface UserRow {
  id: string;
  email: string;
  name: string;
  role: string;
  active: boolean | number;
  password_hash: string;
  created_at: string;
}

export function userFromRow(row: UserRow): User {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    role: row.role as Role,
    active: truthy(row.active),
    createdAt: row.created_at,
  };
}

export interface TokenRow {
  id: string;
  user_id: string;
  kind: string;
  name: string;
  created_at: string;
  expires_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  user_agent: string | null;
  address: string | null;
}

export function tokenFromRow(row: TokenRow): Token {
  const token: Token = {
    id: row.id,
    userId: row.user_id,
    kind: row.kind as TokenKind,
    name: row.name,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
  if (row.last_used_at !== null) token.lastUsedAt = row.last_used_at;
  if (row.revoked_at !== null) token.revokedAt = row.revoked_at;
  if (row.user_agent !== null) token.userAgent = row.user_agent;
  if (row.address !== null) token.address = row.address;
  return token;
}

export interface AuditRow {
  id: string;
  at: string;
  actor_id: string;
  actor_email: string;
  action: string;
  target: string;
  before_json: string | null;
  after_json: string | null;
}

export function auditFromRow(row: AuditRow): AuditEntry {
  return {
    id: row.id,
    at: row.at,
    actorId: row.actor_id,
    actorEmail: row.actor_email,
    action: row.action,
    target: row.target,
    before: fromJson(row.before_json),
    after: fromJson(row.after_json),
  };
}

export interface EnvironmentRow {
  id: string;
  owner_id: string;
  owner_email: string;
  name: string;
  image: string;
  cvm: boolean | number;
  cpu: number;
  memory_gib: number;
  disk_gib: number;
  state: string;
  state_reason: string | null;
  runtime: string;
  systemd: string;
  failed_units: string;
  docker: string;
  build_id: string | null;
  timeline: string;
  created_at: string;
  updated_at: string;
  version: number;
}

/** The columns of a summary: every one but the timeline, which lists leave behind. */
export const environmentSummaryColumns =
  "id, owner_id, owner_email, name, image, cvm, cpu, memory_gib, disk_gib, state, state_reason, runtime, systemd, failed_units, docker, build_id, created_at, updated_at, version";

export function environmentSummaryFromRow(row: Omit<EnvironmentRow, "timeline">): EnvironmentSummary {
  const environment: EnvironmentSummary = {
    id: row.id,
    ownerId: row.owner_id,
    ownerEmail: row.owner_email,
    name: row.name,
    image: row.image,
    cvm: truthy(row.cvm),
    cpu: Number(row.cpu),
    memoryGiB: Number(row.memory_gib),
    diskGiB: Number(row.disk_gib),
    state: row.state as Environment["state"],
    runtime: row.runtime as Environment["runtime"],
    systemd: row.systemd as Environment["systemd"],
    failedUnits: JSON.parse(row.failed_units),
    docker: row.docker as Environment["docker"],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    version: Number(row.version),
  };
  const reason = optional(row.state_reason);
  if (reason !== undefined) environment.stateReason = reason;
  const buildId = optional(row.build_id);
  if (buildId !== undefined) environment.buildId = buildId;
  return environment;
}

export function environmentFromRow(row: EnvironmentRow): Environment {
  return { ...environmentSummaryFromRow(row), timeline: JSON.parse(row.timeline) };
}

/** Which column holds each patchable field, and how its value is written. */
export const environmentColumns = {
  state: { column: "state", write: (v: unknown) => v as SqlValue },
  stateReason: { column: "state_reason", write: (v: unknown) => (v ?? null) as SqlValue },
  runtime: { column: "runtime", write: (v: unknown) => v as SqlValue },
  systemd: { column: "systemd", write: (v: unknown) => v as SqlValue },
  failedUnits: { column: "failed_units", write: (v: unknown) => JSON.stringify(v ?? []) },
  docker: { column: "docker", write: (v: unknown) => v as SqlValue },
  buildId: { column: "build_id", write: (v: unknown) => (v ?? null) as SqlValue },
  image: { column: "image", write: (v: unknown) => v as SqlValue },
  cpu: { column: "cpu", write: (v: unknown) => v as SqlValue },
  memoryGiB: { column: "memory_gib", write: (v: unknown) => v as SqlValue },
  diskGiB: { column: "disk_gib", write: (v: unknown) => v as SqlValue },
  timeline: { column: "timeline", write: (v: unknown) => JSON.stringify(v ?? []) },
} as const;

export interface BuildRow {
  id: string;
  environment_id: string;
  started_at: string;
  finished_at: string | null;
  outcome: string | null;
}

export function buildFromRow(row: BuildRow): Build {
  const build: Build = { id: row.id, environmentId: row.environment_id, startedAt: row.started_at };
  if (row.finished_at !== null) build.finishedAt = row.finished_at;
  if (row.outcome !== null) build.outcome = row.outcome as Build["outcome"];
  return build;
}

export interface BuildLogRow {
  build_id: string;
  seq: number;
  at: string;
  text: string;
}

export function logLineFromRow(row: BuildLogRow): BuildLogLine {
  return { buildId: row.build_id, seq: Number(row.seq), at: row.at, text: row.text };
}
