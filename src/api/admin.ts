/** Operations for site admins and managers. */

import { requirePermission } from "./auth.js";
import { readQuery } from "./input.js";
import type { ApiRoutes } from "./routes.js";
import { isSet, reconcileQuerySchema, reconcileReportSchema } from "./schemas.js";

export function adminRoutes(routes: ApiRoutes): void {
  const { environments } = routes.deps;
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
}
