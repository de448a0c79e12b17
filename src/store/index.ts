/**
 * The store: SQLite in the data directory by default, PostgreSQL when a URL is
 * given (several server replicas share it). Both run the same migrations at
 * open and behave the same behind the Store port.
 */

import type { Store } from "../core/store.js";
import type { Database } from "./database.js";
import { migrate } from "./migrations.js";
import { openPostgresDatabase } from "./postgres-database.js";
import { sqlStore } from "./sql-store.js";
import { openSqliteDatabase } from "./sqlite-database.js";

export { type IdPrefix, newId } from "./ids.js";
export { migrations } from "./migrations.js";
export { sqlitePath } from "./sqlite-database.js";

export interface StoreOptions {
  /** SQLite lives in this directory unless a PostgreSQL URL is given. */
  dataDir: string;
  postgresUrl?: string;
}

/** Opens the store and runs its migrations. */
export async function openStore(options: StoreOptions): Promise<Store> {
  const db: Database = options.postgresUrl
    ? openPostgresDatabase(options.postgresUrl)
    : openSqliteDatabase(options.dataDir);
  try {
    await migrate(db);
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
  return sqlStore(db);
}
