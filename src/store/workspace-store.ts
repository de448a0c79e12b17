/** Shared ports, per-environment idle stop and last use, on either database (src/core/store.ts WorkspaceStore). */

import type { PortShare, SharedPort } from "../core/ports.js";
import type { WorkspaceStore } from "../core/store.js";
import type { Database } from "./database.js";

export function workspaceStore(db: Database): WorkspaceStore {
  return {
    async portShares(environmentId) {
      const rows = await db.query<{ port: number; share: string }>(
        "SELECT port, share FROM environment_ports WHERE environment_id = $1 ORDER BY port",
        [environmentId],
      );
      return rows.map((row): SharedPort => ({ port: Number(row.port), share: row.share as PortShare }));
    },
    async setPortShare(environmentId, port, share, at) {
      if (share === "private") {
        await db.query("DELETE FROM environment_ports WHERE environment_id = $1 AND port = $2", [environmentId, port]);
        return;
      }
      await db.query(
        `INSERT INTO environment_ports (environment_id, port, share, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (environment_id, port) DO UPDATE SET share = excluded.share, updated_at = excluded.updated_at`,
        [environmentId, port, share, at],
      );
    },
    async idleStopMinutes(environmentId) {
      const [row] = await db.query<{ minutes: number }>(
        "SELECT minutes FROM environment_idle WHERE environment_id = $1",
        [environmentId],
      );
      return row ? Number(row.minutes) : undefined;
    },
    async setIdleStopMinutes(environmentId, minutes, at) {
      if (minutes === undefined) {
        await db.query("DELETE FROM environment_idle WHERE environment_id = $1", [environmentId]);
        return;
      }
      await db.query(
        `INSERT INTO environment_idle (environment_id, minutes, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (environment_id) DO UPDATE SET minutes = excluded.minutes, updated_at = excluded.updated_at`,
        [environmentId, minutes, at],
      );
    },
    async lastActiveAt(environmentId) {
      const [row] = await db.query<{ last_active_at: string }>(
        "SELECT last_active_at FROM environment_activity WHERE environment_id = $1",
        [environmentId],
      );
      return row?.last_active_at;
    },
    async recordActivity(environmentId, at) {
      // ISO times sort as text, so the later of two replicas' reports wins on either database.
      await db.query(
        `INSERT INTO environment_activity (environment_id, last_active_at) VALUES ($1, $2)
         ON CONFLICT (environment_id) DO UPDATE SET last_active_at = excluded.last_active_at
         WHERE environment_activity.last_active_at < excluded.last_active_at`,
        [environmentId, at],
      );
    },
  };
}
