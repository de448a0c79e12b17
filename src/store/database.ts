/**
 * The little the store needs from a SQL database, so one implementation of the
 * Store port runs on both back ends. Statements are written with PostgreSQL's
 * `$1` placeholders; the SQLite side rewrites them.
 */

export type SqlValue = string | number | boolean | null | undefined;

export interface SqlRunner {
  query<Row = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<Row[]>;
}

export interface TransactionOptions {
  /**
   * A table to lock against concurrent writers for the whole transaction
   * (PostgreSQL); SQLite write transactions are exclusive anyway.
   */
  lockTable?: string;
}

export interface Database extends SqlRunner {
  readonly kind: "sqlite" | "postgres";
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** SQLite only: a consistent copy of the database in `file`, taken while it is in use. */
  backup?(file: string): Promise<void>;
  close(): Promise<void>;
}

/** The name of the unique index or columns an insert collided with, or undefined for any other error. */
export function uniqueViolation(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const e = error as { code?: unknown; constraint?: unknown; message?: unknown };
  if (e.code === "23505") return String(e.constraint ?? e.message);
  if (e.code === "SQLITE_CONSTRAINT_UNIQUE" || e.code === "SQLITE_CONSTRAINT_PRIMARYKEY") return String(e.message);
  return undefined;
}
