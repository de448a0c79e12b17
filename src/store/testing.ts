/**
 * For tests across the project: a fresh PostgreSQL database of its own on the
 * test server (`CVM_TEST_PG_URL`, which `npm test` always sets), dropped after.
 */

import { randomBytes } from "node:crypto";
import pg from "pg";

export interface FreshDatabase {
  url: string;
  drop(): Promise<void>;
}

/** The test server's URL; throws (so the test fails loudly) when it is not set. */
export function testPostgresUrl(): string {
  const url = process.env.CVM_TEST_PG_URL;
  if (!url) {
    throw new Error("CVM_TEST_PG_URL is not set: run tests with `npm test -- FILE`, which starts PostgreSQL");
  }
  return url;
}

async function onServer<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Creates `cvm_test_<random>` and returns its URL and a function that drops it. */
export async function freshPostgresUrl(): Promise<FreshDatabase> {
  const serverUrl = testPostgresUrl();
  const name = `cvm_test_${randomBytes(6).toString("hex")}`;
  await onServer(serverUrl, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      // FORCE ends sessions a test left open (a pool not closed after a failure).
      await onServer(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}
