/**
 * The store: SQLite in the data directory by default, PostgreSQL when a URL is
 * given (several server replicas share it). Both run the same migrations at
 * open and behave the same behind the Store port.
 */

import { CvmError } from "../core/errors.js";
import type { Store } from "../core/store.js";
import type { Database } from "./database.js";
import { migrate } from "./migrations.js";
import { openPostgresDatabase } from "./postgres-database.js";
import { sqlStore } from "./sql-store.js";
import { openSqliteDatabase, sqlitePath } from "./sqlite-database.js";

export { type IdPrefix, newId } from "./ids.js";
export { migrations } from "./migrations.js";
export { sqlitePath };

export interface StoreOptions {
  /** SQLite lives in this directory unless a PostgreSQL URL is given. */
  dataDir: string;
  postgresUrl?: string;
}

/** Opens the store and runs its migrations. */
export async function openStore(options: StoreOptions): Promise<Store> {
  const where = options.postgresUrl
    ? `PostgreSQL at ${withoutPassword(options.postgresUrl)}`
    : `SQLite at ${sqlitePath(options.dataDir)}`;
  let db: Database | undefined;
  try {
    db = options.postgresUrl ? openPostgresDatabase(options.postgresUrl) : openSqliteDatabase(options.dataDir);
    await migrate(db);
  } catch (error) {
    await db?.close().catch(() => undefined);
    const reason = error instanceof Error ? error.message : String(error);
    throw new CvmError("UNAVAILABLE", `Cannot open the store (${where}): ${reason}`, { cause: error });
  }
  return sqlStore(db);
}

/** A connection URL fit for a log line or an error message. */
export function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(an unparsable URL)";
  }
}
export { restoreBackup } from "./backup.js";
