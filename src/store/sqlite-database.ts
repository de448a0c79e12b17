/**
 * The SQLite back end: one better-sqlite3 connection to `<dataDir>/cvm.db` in
 * WAL mode. better-sqlite3 is synchronous, but the Store port is async: while
 * one caller awaits inside a transaction another could slip a statement into
 * it on the same connection, so every statement and transaction waits its
 * turn in one queue, shared by every connection this process opens to the
 * same file (a second connection blocking on the lock would otherwise wait
 * synchronously for a first one that cannot run meanwhile).
 */

import { closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { join, resolve } from "node:path";
import Sqlite from "better-sqlite3";
import type { Database, SqlRunner, SqlValue } from "./database.js";

const busyTimeoutMs = 5_000;

interface Prepared {
  statement: Sqlite.Statement;
  /** For each `?` in the rewritten statement, the index of the `$n` parameter it stands for. */
  order: number[];
}

/** Serializes async work on one connection. */
class TurnQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

const queues = new Map<string, TurnQueue>();

export function sqlitePath(dataDir: string): string {
  return join(dataDir, "cvm.db");
}

export function openSqliteDatabase(dataDir: string): Database {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = sqlitePath(dataDir);
  // Created before SQLite opens it so it never exists with wider permissions;
  // SQLite gives its -wal and -shm files the same mode.
  if (!existsSync(path)) closeSync(openSync(path, "a", 0o600));
  const db = new Sqlite(path, { timeout: busyTimeoutMs });
  db.pragma("journal_mode = WAL");
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");

  const cache = new Map<string, Prepared>();
  const prepare = (sql: string): Prepared => {
    let prepared = cache.get(sql);
    if (!prepared) {
      const order: number[] = [];
      const rewritten = sql.replace(/\$(\d+)/g, (_, n: string) => {
        order.push(Number(n) - 1);
        return "?";
      });
      prepared = { statement: db.prepare(rewritten), order };
      cache.set(sql, prepared);
    }
    return prepared;
  };
  const bindable = (value: SqlValue): string | number | null => {
    if (value === undefined || value === null) return null;
    if (typeof value === "boolean") return value ? 1 : 0;
    return value;
  };
  const execute = <Row>(sql: string, params: readonly SqlValue[] = []): Row[] => {
    const { statement, order } = prepare(sql);
    const values = order.map((i) => bindable(params[i]));
    if (statement.reader) return statement.all(values) as Row[];
    statement.run(values);
    return [];
  };

  const key = resolve(path);
  const queue = queues.get(key) ?? new TurnQueue();
  queues.set(key, queue);
  const inTransaction: SqlRunner = {
    query: async <Row>(sql: string, params?: readonly SqlValue[]) => execute<Row>(sql, params),
  };
  return {
    kind: "sqlite",
    query: <Row>(sql: string, params?: readonly SqlValue[]) => queue.run(() => execute<Row>(sql, params)),
    transaction: <T>(fn: (tx: SqlRunner) => Promise<T>) =>
      queue.run(async () => {
        // IMMEDIATE takes the write lock up front, so a second process waits
        // (busy timeout) instead of failing on upgrade halfway through.
        db.exec("BEGIN IMMEDIATE");
        try {
          const result = await fn(inTransaction);
          db.exec("COMMIT");
          return result;
        } catch (error) {
          if (db.inTransaction) db.exec("ROLLBACK");
          throw error;
        }
      }),
    // SQLite's online backup API, taking its turn: no transaction is half done while it copies.
    backup: (file: string) =>
      queue.run(async () => {
        await db.backup(file);
      }),
    close: () =>
      queue.run(() => {
        db.close();
      }),
  };
}
