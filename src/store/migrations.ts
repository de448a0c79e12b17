/**
 * The schema, as one ordered list of steps shared by both back ends (the
 * dialects differ only in a few column types). A step never changes once
 * released: add a new one. Steps run at open inside one transaction;
 * `schema_migrations` records which are applied, so opening twice is a no-op,
 * and on PostgreSQL an advisory lock makes replicas that start together take
 * turns.
 */

import type { Database } from "./database.js";

interface ColumnTypes {
  bool: string;
  real: string;
}

const columnTypes: Record<Database["kind"], ColumnTypes> = {
  sqlite: { bool: "INTEGER", real: "REAL" },
  postgres: { bool: "BOOLEAN", real: "DOUBLE PRECISION" },
};

export interface Migration {
  version: number;
  name: string;
  statements: (t: ColumnTypes) => string[];
}

// Times are ISO-8601 UTC text (always from Date#toISOString), so they sort
// as text the same way on both back ends.
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "users, tokens, settings, audit",
    statements: (t) => [
      `CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        active ${t.bool} NOT NULL,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
      )`,
      "CREATE UNIQUE INDEX users_email_key ON users (lower(email))",
      `CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
      )`,
      "CREATE INDEX tokens_user ON tokens (user_id)",
      `CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      )`,
      `CREATE TABLE audit (
        id TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        actor_email TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        before_json TEXT,
        after_json TEXT
      )`,
      "CREATE INDEX audit_newest ON audit (at, id)",
      "CREATE INDEX audit_actor ON audit (actor_id, at)",
      "CREATE INDEX audit_target ON audit (target, at)",
    ],
  },
  {
    version: 2,
    name: "environments, registry credentials, builds, build logs",
    statements: (t) => [
      `CREATE TABLE environments (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL REFERENCES users (id),
        owner_email TEXT NOT NULL,
        name TEXT NOT NULL,
        image TEXT NOT NULL,
        cvm ${t.bool} NOT NULL,
        cpu ${t.real} NOT NULL,
        memory_gib ${t.real} NOT NULL,
        disk_gib ${t.real} NOT NULL,
        state TEXT NOT NULL,
        state_reason TEXT,
        runtime TEXT NOT NULL,
        systemd TEXT NOT NULL,
        failed_units TEXT NOT NULL,
        docker TEXT NOT NULL,
        build_id TEXT,
        timeline TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        version INTEGER NOT NULL
      )`,
      // A deleted environment's row may be kept for its history; its name is free again.
      "CREATE UNIQUE INDEX environments_owner_name_key ON environments (owner_id, name) WHERE state <> 'deleted'",
      "CREATE INDEX environments_state ON environments (state)",
      "CREATE INDEX environments_created ON environments (created_at, id)",
      `CREATE TABLE environment_credentials (
        environment_id TEXT PRIMARY KEY REFERENCES environments (id) ON DELETE CASCADE,
        username TEXT NOT NULL,
        password TEXT NOT NULL
      )`,
      `CREATE TABLE builds (
        id TEXT PRIMARY KEY,
        environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT,
        log_seq INTEGER NOT NULL DEFAULT 0
      )`,
      "CREATE INDEX builds_environment ON builds (environment_id, started_at)",
      `CREATE TABLE build_logs (
        build_id TEXT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (build_id, seq)
      )`,
    ],
  },
  {
    version: 3,
    name: "environments listed per owner without a scan",
    statements: () => ["CREATE INDEX environments_owner ON environments (owner_id, created_at, id)"],
  },
  {
    version: 4,
    name: "login throttle, shared by replicas",
    statements: () => [
      // One row per throttled key (`account:<email>`, `address:<ip>`): failures since the last quiet spell.
      `CREATE TABLE login_throttle (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_failure_at TEXT NOT NULL,
        locked_until TEXT
      )`,
    ],
  },
  {
    version: 5,
    name: "where each token was created: user agent and address",
    statements: () => ["ALTER TABLE tokens ADD COLUMN user_agent TEXT", "ALTER TABLE tokens ADD COLUMN address TEXT"],
  },
  {
    version: 6,
    name: "lists paged in their keyset order, filtered by state and kind without a scan",
    statements: () => [
      "DROP INDEX environments_state",
      "CREATE INDEX environments_state ON environments (state, created_at, id)",
      "CREATE INDEX environments_kind ON environments (cvm, created_at, id)",
      "CREATE INDEX users_created ON users (created_at, id)",
    ],
  },
  {
    version: 7,
    name: "shared ports, idle stop and last use per environment",
    statements: () => [
      `CREATE TABLE environment_ports (
        environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
        port INTEGER NOT NULL,
        share TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (environment_id, port)
      )`,
      `CREATE TABLE environment_idle (
        environment_id TEXT PRIMARY KEY REFERENCES environments (id) ON DELETE CASCADE,
        minutes INTEGER NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      `CREATE TABLE environment_activity (
        environment_id TEXT PRIMARY KEY REFERENCES environments (id) ON DELETE CASCADE,
        last_active_at TEXT NOT NULL
      )`,
    ],
  },
];

/** Any constant shared by every cvm server; replicas serialize their migrations on it. */
const migrationLockKey = 7_080_2026;

/** Applies the steps not yet applied; returns the versions it applied. */
export async function migrate(db: Database, steps: readonly Migration[] = migrations): Promise<number[]> {
  return db.transaction(async (tx) => {
    if (db.kind === "postgres") await tx.query("SELECT pg_advisory_xact_lock($1)", [migrationLockKey]);
    await tx.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    );
    const rows = await tx.query<{ version: number }>("SELECT version FROM schema_migrations");
    const done = new Set(rows.map((r) => Number(r.version)));
    const applied: number[] = [];
    for (const migration of steps) {
      if (done.has(migration.version)) continue;
      for (const statement of migration.statements(columnTypes[db.kind])) await tx.query(statement);
      await tx.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
        migration.version,
        migration.name,
        new Date().toISOString(),
      ]);
      applied.push(migration.version);
    }
    return applied;
  });
}
