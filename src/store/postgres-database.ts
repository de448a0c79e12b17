/** The PostgreSQL back end: a `pg` pool, for several server replicas sharing one database. */

import pg from "pg";
import type { Database, SqlRunner, SqlValue, TransactionOptions } from "./database.js";

// COUNT(*) and other int8 results come back as strings by default; every
// count the store reads fits in a JavaScript number.
const int8 = 20;

export function openPostgresDatabase(url: string): Database {
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 10_000 });
  pool.on("error", () => {
    // An idle client lost its connection (server restart); the pool replaces it.
  });
  const types = {
    getTypeParser: (oid: number, format?: string) =>
      oid === int8 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as "text"),
  };
  const run = async <Row>(
    client: pg.Pool | pg.PoolClient,
    sql: string,
    params: readonly SqlValue[] = [],
  ): Promise<Row[]> => {
    const result = await client.query({ text: sql, values: params.map((v) => v ?? null), types });
    return result.rows as Row[];
  };
  return {
    kind: "postgres",
    query: <Row>(sql: string, params?: readonly SqlValue[]) => run<Row>(pool, sql, params),
    async transaction<T>(fn: (tx: SqlRunner) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        if (options.lockTable) {
          // Blocks other lockers and inserts until commit; plain reads go on.
          await client.query(`LOCK TABLE ${options.lockTable} IN SHARE ROW EXCLUSIVE MODE`);
        }
        const result = await fn({
          query: <Row>(sql: string, params?: readonly SqlValue[]) => run<Row>(client, sql, params),
        });
        await client.query("COMMIT");
        return result;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
