/** Operations for site admins and managers: reconciling with the provider, and backups. */

import { createReadStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { requirePermission } from "./auth.js";
import { readQuery } from "./input.js";
import type { ApiRoutes } from "./routes.js";
import { isSet, reconcileQuerySchema, reconcileReportSchema } from "./schemas.js";

export const backupType = "application/vnd.sqlite3";

export function adminRoutes(routes: ApiRoutes): void {
  const { environments, store, audit } = routes.deps;
  routes.add(
    {
      method: "post",
      path: "/admin/reconcile",
      summary:
        "Compare environments with the workloads the provider has: mark vanished ones failed, report (and remove) orphans",
      tag: "admin",
      query: reconcileQuerySchema,
      response: reconcileReportSchema,
      errors: [403],
    },
    async (c) => {
      requirePermission(c, "reconcile", "reconcile environments");
      const { removeOrphans } = readQuery(c, reconcileQuerySchema);
      return c.json(await environments.reconcile({ removeOrphans: isSet(removeOrphans) }));
    },
  );
  routes.add(
    {
      method: "get",
      path: "/admin/backup",
      summary:
        "A consistent snapshot of the store, taken while the server runs (SQLite's online backup; `cvm server --restore FILE` brings it back). Secrets in it stay sealed: keep the key (<data-dir>/secret.key or CVM_SECRET_KEY) apart from it. With PostgreSQL, a 409 naming pg_dump",
      tag: "admin",
      response: { binary: backupType },
      errors: [403, 409],
    },
    async (c) => {
      const actor = requirePermission(c, "backup", "back up the store");
      const dir = mkdtempSync(join(tmpdir(), "cvm-backup-"));
      const file = join(dir, "cvm.db");
      try {
        await store.backup(file);
      } catch (error) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
      await audit.record(actor, "admin.backup", "store", null, null);
      const stream = createReadStream(file);
      // The snapshot is read once: it goes as soon as it is sent, or the client leaves.
      stream.on("close", () => rmSync(dir, { recursive: true, force: true }));
      const at = new Date().toISOString().replace(/[:.]/g, "-");
      return c.body(Readable.toWeb(stream) as ReadableStream, 200, {
        "content-type": backupType,
        "content-disposition": `attachment; filename="cvm-backup-${at}.db"`,
        "cache-control": "no-store",
      });
    },
  );
}
