/** The audit log, newest first, filtered and paginated (site admins and managers). */

import { requirePermission } from "./auth.js";
import { readQuery } from "./input.js";
import type { ApiRoutes } from "./routes.js";
import { auditPageSchema, auditQuerySchema } from "./schemas.js";

export function auditRoutes(routes: ApiRoutes): void {
  const { store } = routes.deps;
  routes.add(
    {
      method: "get",
      path: "/audit",
      summary: "Audit entries: who changed what, before and after",
      tag: "audit",
      query: auditQuerySchema,
      response: auditPageSchema,
      errors: [403],
    },
    async (c) => {
      requirePermission(c, "audit:read", "read the audit log");
      const q = readQuery(c, auditQuerySchema);
      const page = await store.audit.list(
        { actorId: q.actor, action: q.action, target: q.target, since: q.since, until: q.until },
        { limit: q.limit, cursor: q.cursor },
      );
      return c.json(page);
    },
  );
}
