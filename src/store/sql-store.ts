/**
 * The Store port over any `Database`: the same statements and the same
 * semantics on SQLite and PostgreSQL. The concurrency rules live here:
 * environments change by compare-and-set on their version, the first user is
 * created under a lock, and build log lines take their seq from a counter on
 * the build's row, bumped in the same transaction.
 */

import { closeSync, openSync } from "node:fs";
import type { AuditEntry, AuditFilter, Page } from "../core/audit.js";
import type { Build, BuildLogLine } from "../core/build.js";
import {
  type Environment,
  type EnvironmentSummary,
  environmentStates,
  type RegistryCredentials,
} from "../core/environment.js";
import { CvmError, invalid, notFound } from "../core/errors.js";
import type { InfrastructureSettings } from "../core/settings.js";
import type {
  AuditStore,
  BuildStore,
  EnvironmentFilter,
  EnvironmentPatch,
  EnvironmentStore,
  LoginThrottleStore,
  NewToken,
  NewUser,
  PageRequest,
  SettingsStore,
  Store,
  ThrottleState,
  TokenStore,
  UserFilter,
  UserStore,
} from "../core/store.js";
import type { Token, User } from "../core/user.js";
import { type Database, type SqlRunner, type SqlValue, uniqueViolation } from "./database.js";
import { newId } from "./ids.js";
import {
  type AuditRow,
  auditFromRow,
  type BuildLogRow,
  type BuildRow,
  buildFromRow,
  type EnvironmentRow,
  environmentColumns,
  environmentFromRow,
  environmentSummaryColumns,
  environmentSummaryFromRow,
  logLineFromRow,
  type TokenRow,
  toJson,
  tokenFromRow,
  type UserRow,
  userFromRow,
} from "./rows.js";
import { workspaceStore } from "./workspace-store.js";

const now = () => new Date().toISOString();

/** The most items one page holds, whatever a caller asks for. */
export const maxPageSize = 1000;

/** Collects `$n` parameters while a WHERE clause is assembled. */
class Conditions {
  readonly clauses: string[] = [];
  readonly params: SqlValue[] = [];

  add(clause: (...placeholders: string[]) => string, ...values: SqlValue[]): void {
    const placeholders = values.map((value) => {
      this.params.push(value);
      return `$${this.params.length}`;
    });
    this.clauses.push(clause(...placeholders));
  }

  get where(): string {
    return this.clauses.length > 0 ? `WHERE ${this.clauses.join(" AND ")}` : "";
  }
}

/** An ISO-8601 UTC time, so text comparison in SQL is time comparison. */
function isoTime(field: string, value: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw invalid([{ field, detail: "must be a time such as 2026-01-31T12:00:00Z" }]);
  return new Date(ms).toISOString();
}

function encodeCursor(key: [string, string]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const value = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === "string")) {
      return value as [string, string];
    }
  } catch {
    // falls through to the one error below
  }
  throw invalid([{ field: "cursor", detail: "is not a cursor this server returned" }]);
}

/** How a list is ordered: by a time column, ties broken by id, which makes the order total and stable. */
interface Keyset<Row, T> {
  table: string;
  /** What to select; every column when absent. */
  columns?: string;
  time: string;
  newestFirst: boolean;
  fromRow(row: Row): T;
  keyOf(item: T): [string, string];
}

/**
 * One page of a list in its keyset order. The cursor names the last item of
 * the page before, so a deep page costs what the first does (an index range,
 * never an OFFSET), and rows added or removed meanwhile neither repeat nor
 * skip the others.
 */
async function keysetPage<Row, T>(
  db: Database,
  keyset: Keyset<Row, T>,
  where: Conditions,
  page: PageRequest,
): Promise<Page<T>> {
  const limit = Number.isFinite(page.limit) ? Math.min(Math.max(1, Math.floor(page.limit)), maxPageSize) : 50;
  if (page.cursor) {
    const [time, id] = decodeCursor(page.cursor);
    const after = keyset.newestFirst ? "<" : ">";
    where.add((t, i) => `(${keyset.time}, id) ${after} (${t}, ${i})`, time, id);
  }
  const direction = keyset.newestFirst ? "DESC" : "ASC";
  const rows = await db.query<Row>(
    `SELECT ${keyset.columns ?? "*"} FROM ${keyset.table} ${where.where} ORDER BY ${keyset.time} ${direction}, id ${direction} LIMIT ${limit + 1}`,
    where.params,
  );
  const items = rows.slice(0, limit).map(keyset.fromRow);
  return rows.length > limit ? { items, nextCursor: encodeCursor(keyset.keyOf(items[items.length - 1])) } : { items };
}

function conflictOn(field: "name" | "email", error: unknown): CvmError | undefined {
  const violated = uniqueViolation(error);
  if (violated === undefined || !violated.includes(field)) return undefined;
  const detail =
    field === "name" ? "is already used by another of your environments" : "is already used by another account";
  const message = field === "name" ? "An environment with this name already exists" : "This email is already used";
  return new CvmError("CONFLICT", message, { cause: error, validations: [{ field, detail }] });
}

async function insertUser(db: SqlRunner, user: NewUser): Promise<User> {
  const row: UserRow = {
    id: newId("usr"),
    email: user.email,
    name: user.name,
    role: user.role,
    active: true,
    password_hash: user.passwordHash,
    created_at: now(),
  };
  await db.query(
    "INSERT INTO users (id, email, name, role, active, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    [row.id, row.email, row.name, row.role, true, row.password_hash, row.created_at],
  );
  return userFromRow(row);
}

const usersOldestFirst: Keyset<UserRow, User> = {
  table: "users",
  time: "created_at",
  newestFirst: false,
  fromRow: userFromRow,
  keyOf: (user) => [user.createdAt, user.id],
};

function userConditions(filter: UserFilter): Conditions {
  const where = new Conditions();
  if (filter.role !== undefined) where.add((p) => `role = ${p}`, filter.role);
  if (filter.active !== undefined) where.add((p) => `active = ${p}`, filter.active);
  if (filter.email !== undefined) where.add((p) => `lower(email) = lower(${p})`, filter.email);
  return where;
}

function userStore(db: Database): UserStore {
  const get = async (id: string) => {
    const [row] = await db.query<UserRow>("SELECT * FROM users WHERE id = $1", [id]);
    return row ? userFromRow(row) : undefined;
  };
  return {
    async create(user) {
      try {
        return await insertUser(db, user);
      } catch (error) {
        throw conflictOn("email", error) ?? error;
      }
    },
    createFirst(user) {
      return db.transaction(
        async (tx) => {
          const [{ n }] = await tx.query<{ n: number }>("SELECT COUNT(*) AS n FROM users");
          return Number(n) > 0 ? undefined : insertUser(tx, user);
        },
        { lockTable: "users" },
      );
    },
    get,
    async getByEmail(email) {
      const [row] = await db.query<UserRow>("SELECT * FROM users WHERE lower(email) = lower($1)", [email]);
      return row ? { ...userFromRow(row), passwordHash: row.password_hash } : undefined;
    },
    page(filter, page) {
      return keysetPage(db, usersOldestFirst, userConditions(filter), page);
    },
    async count(filter = {}) {
      const where = userConditions(filter);
      const [{ n }] = await db.query<{ n: number }>(`SELECT COUNT(*) AS n FROM users ${where.where}`, where.params);
      return Number(n);
    },
    async update(id, patch) {
      const sets = new Conditions();
      if (patch.role !== undefined) sets.add((p) => `role = ${p}`, patch.role);
      if (patch.active !== undefined) sets.add((p) => `active = ${p}`, patch.active);
      if (patch.name !== undefined) sets.add((p) => `name = ${p}`, patch.name);
      if (sets.clauses.length > 0) {
        await db.query(`UPDATE users SET ${sets.clauses.join(", ")} WHERE id = $${sets.params.length + 1}`, [
          ...sets.params,
          id,
        ]);
      }
      const user = await get(id);
      if (!user) throw notFound("User");
      return user;
    },
  };
}

function tokenStore(db: Database): TokenStore {
  return {
    async create(token: NewToken): Promise<Token> {
      const row: TokenRow = {
        id: newId("tok"),
        user_id: token.userId,
        kind: token.kind,
        name: token.name,
        created_at: now(),
        expires_at: token.expiresAt,
        last_used_at: null,
        revoked_at: null,
        user_agent: token.userAgent ?? null,
        address: token.address ?? null,
      };
      await db.query(
        "INSERT INTO tokens (id, user_id, kind, name, secret_hash, created_at, expires_at, user_agent, address) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
          row.id,
          row.user_id,
          row.kind,
          row.name,
          token.secretHash,
          row.created_at,
          row.expires_at,
          row.user_agent,
          row.address,
        ],
      );
      return tokenFromRow(row);
    },
    async findBySecretHash(secretHash) {
      const [row] = await db.query<TokenRow>("SELECT * FROM tokens WHERE secret_hash = $1", [secretHash]);
      return row ? tokenFromRow(row) : undefined;
    },
    async listForUser(userId) {
      const rows = await db.query<TokenRow>("SELECT * FROM tokens WHERE user_id = $1 ORDER BY created_at, id", [
        userId,
      ]);
      return rows.map(tokenFromRow);
    },
    async revoke(id, at) {
      // The first revocation's time stands.
      await db.query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", [id, at]);
    },
    async revokeForUser(userId, at) {
      const rows = await db.query<{ id: string }>(
        "UPDATE tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
        [userId, at],
      );
      return rows.length;
    },
    async touch(id, at) {
      await db.query("UPDATE tokens SET last_used_at = $2 WHERE id = $1", [id, at]);
    },
    async sessions(ids) {
      const found: { token: Token; user: User }[] = [];
      // In chunks, so the statement stays well under either back end's parameter limit.
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500);
        const rows = await db.query<TokenRow & { [K in keyof UserRow as `user_${K}`]: UserRow[K] }>(
          `SELECT t.*, u.email AS user_email, u.name AS user_name, u.role AS user_role,
             u.active AS user_active, u.password_hash AS user_password_hash, u.created_at AS user_created_at
           FROM tokens t JOIN users u ON u.id = t.user_id
           WHERE t.id IN (${chunk.map((_, n) => `$${n + 1}`).join(", ")})`,
          chunk,
        );
        for (const row of rows) {
          found.push({
            token: tokenFromRow(row),
            user: userFromRow({
              id: row.user_id,
              email: row.user_email,
              name: row.user_name,
              role: row.user_role,
              active: row.user_active,
              password_hash: row.user_password_hash,
              created_at: row.user_created_at,
            }),
          });
        }
      }
      return found;
    },
  };
}

function loginThrottleStore(db: Database): LoginThrottleStore {
  return {
    async get(keys) {
      const states = new Map<string, ThrottleState>();
      if (keys.length === 0) return states;
      const rows = await db.query<{ key: string; failures: number; locked_until: string | null }>(
        `SELECT key, failures, locked_until FROM login_throttle WHERE key IN (${keys.map((_, n) => `$${n + 1}`).join(", ")})`,
        keys,
      );
      for (const row of rows) states.set(row.key, throttleState(row.failures, row.locked_until));
      return states;
    },
    fail(key, at, forgetBefore, lockMs) {
      return db.transaction(async (tx) => {
        // One statement counts, so two replicas failing at once both count.
        const [row] = await tx.query<{ failures: number }>(
          `INSERT INTO login_throttle (key, failures, last_failure_at) VALUES ($1, 1, $2)
           ON CONFLICT (key) DO UPDATE SET
             failures = CASE WHEN login_throttle.last_failure_at < $3 THEN 1 ELSE login_throttle.failures + 1 END,
             last_failure_at = $2
           RETURNING failures`,
          [key, at, forgetBefore],
        );
        const failures = Number(row.failures);
        const ms = lockMs(failures);
        const lockedUntil = ms > 0 ? new Date(Date.parse(at) + ms).toISOString() : null;
        await tx.query("UPDATE login_throttle SET locked_until = $2 WHERE key = $1", [key, lockedUntil]);
        return throttleState(failures, lockedUntil);
      });
    },
    async clear(key) {
      await db.query("DELETE FROM login_throttle WHERE key = $1", [key]);
    },
  };
}

function throttleState(failures: number, lockedUntil: string | null): ThrottleState {
  const state: ThrottleState = { failures: Number(failures) };
  if (lockedUntil !== null) state.lockedUntil = lockedUntil;
  return state;
}

const infrastructureKey = "infrastructure";

function settingsStore(db: Database): SettingsStore {
  return {
    async getInfrastructure() {
      const [row] = await db.query<{ value: string }>("SELECT value FROM settings WHERE key = $1", [infrastructureKey]);
      return row ? (JSON.parse(row.value) as InfrastructureSettings) : undefined;
    },
    async putInfrastructure(settings) {
      await db.query(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [infrastructureKey, JSON.stringify(settings)],
      );
    },
    async getValue(key) {
      const [row] = await db.query<{ value: string }>("SELECT value FROM settings WHERE key = $1", [key]);
      return row?.value;
    },
    async putValueIfAbsent(key, value) {
      await db.query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", [key, value]);
      const [row] = await db.query<{ value: string }>("SELECT value FROM settings WHERE key = $1", [key]);
      return row.value;
    },
    async removeValue(key) {
      await db.query("DELETE FROM settings WHERE key = $1", [key]);
    },
  };
}

const auditNewestFirst: Keyset<AuditRow, AuditEntry> = {
  table: "audit",
  time: "at",
  newestFirst: true,
  fromRow: auditFromRow,
  keyOf: (entry) => [entry.at, entry.id],
};

function auditStore(db: Database): AuditStore {
  return {
    async append(entry) {
      const stored: AuditEntry = { ...entry, id: newId("aud"), at: isoTime("at", entry.at) };
      await db.query(
        "INSERT INTO audit (id, at, actor_id, actor_email, action, target, before_json, after_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
          stored.id,
          stored.at,
          stored.actorId,
          stored.actorEmail,
          stored.action,
          stored.target,
          toJson(stored.before),
          toJson(stored.after),
        ],
      );
      return stored;
    },
    async list(filter: AuditFilter, page): Promise<Page<AuditEntry>> {
      const where = new Conditions();
      if (filter.actorId) where.add((p) => `actor_id = ${p}`, filter.actorId);
      if (filter.action) where.add((p) => `action = ${p}`, filter.action);
      if (filter.target) where.add((p) => `target = ${p}`, filter.target);
      if (filter.since) where.add((p) => `at >= ${p}`, isoTime("since", filter.since));
      if (filter.until) where.add((p) => `at <= ${p}`, isoTime("until", filter.until));
      return keysetPage(db, auditNewestFirst, where, page);
    },
  };
}

const environmentsNewestFirst: Keyset<EnvironmentRow, EnvironmentSummary> = {
  table: "environments",
  columns: environmentSummaryColumns,
  time: "created_at",
  newestFirst: true,
  fromRow: environmentSummaryFromRow,
  keyOf: (environment) => [environment.createdAt, environment.id],
};

/** LIKE's own wildcards in a user's text match only themselves; names are lowercase DNS labels. */
const likeEscaped = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

function environmentConditions(filter: EnvironmentFilter): Conditions {
  const where = new Conditions();
  if (filter.ownerId !== undefined) where.add((p) => `owner_id = ${p}`, filter.ownerId);
  if (filter.state !== undefined) where.add((p) => `state = ${p}`, filter.state);
  if (filter.cvm !== undefined) where.add((p) => `cvm = ${p}`, filter.cvm);
  if (filter.name !== undefined) where.add((p) => `name = ${p}`, filter.name);
  if (filter.nameContains) {
    where.add((p) => `name LIKE ${p} ESCAPE '\\'`, `%${likeEscaped(filter.nameContains.toLowerCase())}%`);
  }
  return where;
}

function environmentStore(db: Database): EnvironmentStore {
  const get = async (id: string) => {
    const [row] = await db.query<EnvironmentRow>("SELECT * FROM environments WHERE id = $1", [id]);
    return row ? environmentFromRow(row) : undefined;
  };
  return {
    async create(environment: Environment, credentials?: RegistryCredentials) {
      const stored: Environment = { ...environment, id: environment.id || newId("env") };
      try {
        await db.transaction(async (tx) => {
          await tx.query(
            `INSERT INTO environments (id, owner_id, owner_email, name, image, cvm, cpu, memory_gib, disk_gib, state,
               state_reason, runtime, systemd, failed_units, docker, build_id, timeline, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
            [
              stored.id,
              stored.ownerId,
              stored.ownerEmail,
              stored.name,
              stored.image,
              stored.cvm,
              stored.cpu,
              stored.memoryGiB,
              stored.diskGiB,
              stored.state,
              stored.stateReason ?? null,
              stored.runtime,
              stored.systemd,
              JSON.stringify(stored.failedUnits ?? []),
              stored.docker,
              stored.buildId ?? null,
              JSON.stringify(stored.timeline ?? []),
              stored.createdAt,
              stored.updatedAt,
              stored.version ?? 1,
            ],
          );
          if (credentials) {
            await tx.query(
              "INSERT INTO environment_credentials (environment_id, username, password) VALUES ($1, $2, $3)",
              [stored.id, credentials.username, credentials.password],
            );
          }
        });
      } catch (error) {
        throw conflictOn("name", error) ?? error;
      }
      return stored;
    },
    get,
    async getByOwnerAndName(ownerId, name) {
      // A deleted row may share the name with a live one; the live one wins.
      const [row] = await db.query<EnvironmentRow>(
        `SELECT * FROM environments WHERE owner_id = $1 AND name = $2
         ORDER BY CASE WHEN state = 'deleted' THEN 1 ELSE 0 END, created_at DESC LIMIT 1`,
        [ownerId, name],
      );
      return row ? environmentFromRow(row) : undefined;
    },
    async list(filter: EnvironmentFilter) {
      const where = environmentConditions(filter);
      const rows = await db.query<EnvironmentRow>(
        `SELECT * FROM environments ${where.where} ORDER BY created_at, id`,
        where.params,
      );
      return rows.map(environmentFromRow);
    },
    page(filter, page) {
      return keysetPage(db, environmentsNewestFirst, environmentConditions(filter), page);
    },
    async countByState() {
      const counts: Record<string, number> = Object.fromEntries(environmentStates.map((s) => [s, 0]));
      const rows = await db.query<{ state: string; n: number }>(
        "SELECT state, COUNT(*) AS n FROM environments GROUP BY state",
      );
      for (const row of rows) counts[row.state] = Number(row.n);
      return counts;
    },
    async update(id, expectedVersion, patch: EnvironmentPatch) {
      const sets = new Conditions();
      for (const [field, { column, write }] of Object.entries(environmentColumns)) {
        if (!(field in patch)) continue;
        const value = patch[field as keyof EnvironmentPatch];
        // Only the optional fields may be cleared by patching them to undefined.
        if (value === undefined && column !== "state_reason" && column !== "build_id") continue;
        sets.add((p) => `${column} = ${p}`, write(value));
      }
      sets.add((p) => `updated_at = ${p}`, now());
      const n = sets.params.length;
      const [row] = await db.query<EnvironmentRow>(
        `UPDATE environments SET ${sets.clauses.join(", ")}, version = version + 1
         WHERE id = $${n + 1} AND version = $${n + 2} RETURNING *`,
        [...sets.params, id, expectedVersion],
      );
      return row ? environmentFromRow(row) : undefined;
    },
    async registryCredentials(id) {
      const [row] = await db.query<RegistryCredentials>(
        "SELECT username, password FROM environment_credentials WHERE environment_id = $1",
        [id],
      );
      return row ? { username: row.username, password: row.password } : undefined;
    },
    async listRegistryCredentials() {
      const rows = await db.query<RegistryCredentials & { environment_id: string }>(
        "SELECT environment_id, username, password FROM environment_credentials ORDER BY environment_id",
      );
      return rows.map((row) => ({
        environmentId: row.environment_id,
        credentials: { username: row.username, password: row.password },
      }));
    },
    async replaceRegistryCredentials(id, credentials) {
      await db.query("UPDATE environment_credentials SET username = $2, password = $3 WHERE environment_id = $1", [
        id,
        credentials.username,
        credentials.password,
      ]);
    },
    async remove(id) {
      await db.query("DELETE FROM environments WHERE id = $1", [id]);
    },
  };
}

function buildStore(db: Database): BuildStore {
  return {
    async create(environmentId, at) {
      const row: BuildRow = {
        id: newId("bld"),
        environment_id: environmentId,
        started_at: at,
        finished_at: null,
        outcome: null,
      };
      await db.query("INSERT INTO builds (id, environment_id, started_at) VALUES ($1, $2, $3)", [
        row.id,
        row.environment_id,
        row.started_at,
      ]);
      return buildFromRow(row);
    },
    async get(id) {
      const [row] = await db.query<BuildRow>("SELECT * FROM builds WHERE id = $1", [id]);
      return row ? buildFromRow(row) : undefined;
    },
    async listForEnvironment(environmentId) {
      const rows = await db.query<BuildRow>("SELECT * FROM builds WHERE environment_id = $1 ORDER BY started_at, id", [
        environmentId,
      ]);
      return rows.map(buildFromRow);
    },
    async finish(id, outcome: NonNullable<Build["outcome"]>, at) {
      await db.query("UPDATE builds SET outcome = $2, finished_at = $3 WHERE id = $1", [id, outcome, at]);
    },
    appendLog(buildId, text, at): Promise<BuildLogLine> {
      return db.transaction(async (tx) => {
        // The row lock this UPDATE takes (PostgreSQL) orders concurrent appends.
        const [counter] = await tx.query<{ log_seq: number }>(
          "UPDATE builds SET log_seq = log_seq + 1 WHERE id = $1 RETURNING log_seq",
          [buildId],
        );
        if (!counter) throw notFound("Build");
        const row: BuildLogRow = { build_id: buildId, seq: Number(counter.log_seq), at, text };
        await tx.query("INSERT INTO build_logs (build_id, seq, at, text) VALUES ($1, $2, $3, $4)", [
          row.build_id,
          row.seq,
          row.at,
          row.text,
        ]);
        return logLineFromRow(row);
      });
    },
    async logs(buildId, afterSeq = 0) {
      const rows = await db.query<BuildLogRow>(
        "SELECT * FROM build_logs WHERE build_id = $1 AND seq > $2 ORDER BY seq",
        [buildId, afterSeq],
      );
      return rows.map(logLineFromRow);
    },
    async durations() {
      const rows = await db.query<{ outcome: string; started_at: string; finished_at: string }>(
        "SELECT outcome, started_at, finished_at FROM builds WHERE finished_at IS NOT NULL AND outcome IS NOT NULL",
      );
      return rows.map((row) => ({
        outcome: row.outcome,
        seconds: (Date.parse(row.finished_at) - Date.parse(row.started_at)) / 1000,
      }));
    },
  };
}

export function sqlStore(db: Database): Store {
  let closing: Promise<void> | undefined;
  return {
    soleWriter: db.kind === "sqlite",
    users: userStore(db),
    tokens: tokenStore(db),
    settings: settingsStore(db),
    audit: auditStore(db),
    environments: environmentStore(db),
    builds: buildStore(db),
    workspace: workspaceStore(db),
    loginThrottle: loginThrottleStore(db),
    async backup(file) {
      if (!db.backup) {
        throw new CvmError(
          "CONFLICT",
          'This server keeps its state in PostgreSQL: back it up with pg_dump, such as `pg_dump --format=custom --file=cvm.dump "$CVM_POSTGRES_URL"`, and restore with pg_restore',
        );
      }
      // Created empty and owner-only first: the copy holds password hashes and sealed secrets.
      closeSync(openSync(file, "wx", 0o600));
      await db.backup(file);
    },
    // Idempotent: a server's shutdown path and a test's cleanup may both close it.
    close: () => {
      closing ??= db.close();
      return closing;
    },
  };
}
