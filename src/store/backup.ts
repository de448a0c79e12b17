/**
 * Bringing a backup back (`cvm server --restore FILE`): a snapshot written by
 * `cvm admin backup` (SQLite's online backup of cvm.db) becomes the data
 * dir's database before the store opens. Only into a data dir without a
 * database, so a restore never overwrites live state; the file is checked
 * first (a SQLite database, intact, with cvm's schema). Secrets in it stay
 * sealed: the key travels separately (the old data dir's secret.key, or
 * CVM_SECRET_KEY), and the server refuses to start without it.
 */

import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import Sqlite from "better-sqlite3";
import { CvmError } from "../core/errors.js";
import { sqlitePath } from "./sqlite-database.js";

function checkSnapshot(file: string): void {
  let db: Sqlite.Database | undefined;
  try {
    db = new Sqlite(file, { readonly: true, fileMustExist: true });
    const [{ integrity_check: integrity }] = db.pragma("integrity_check") as { integrity_check: string }[];
    if (integrity !== "ok") throw new Error(`integrity check: ${integrity}`);
    db.prepare("SELECT COUNT(*) AS n FROM schema_migrations").get();
    db.prepare("SELECT COUNT(*) AS n FROM users").get();
  } catch (error) {
    throw new CvmError("BAD_REQUEST", `${file} is not a cvm backup: ${(error as Error).message}`, { cause: error });
  } finally {
    db?.close();
  }
}

export function restoreBackup(file: string, dataDir: string): void {
  if (!existsSync(file) || !statSync(file).isFile()) throw new CvmError("NOT_FOUND", `No backup file at ${file}`);
  const target = sqlitePath(dataDir);
  if (existsSync(target)) {
    throw new CvmError("CONFLICT", `${target} exists: restore into a new data dir, or move that database away first`);
  }
  checkSnapshot(file);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Created exclusively and owner-only first, like the database it becomes.
  closeSync(openSync(target, "wx", 0o600));
  copyFileSync(file, target);
  chmodSync(target, 0o600);
}
