import type { Store } from "../core/store.js";

export interface StoreOptions {
  /** SQLite lives in this directory unless a PostgreSQL URL is given. */
  dataDir: string;
  postgresUrl?: string;
}

/** Opens the store and runs its migrations. (Stub: the store's owner replaces it.) */
export async function openStore(_options: StoreOptions): Promise<Store> {
  throw new Error("store: not implemented yet");
}
