/**
 * Warm pools (Manage > Admin > Infrastructure, `cvm admin pool`): each pool
 * an admin set with its members now, and setting one. The pools are part of
 * the infrastructure settings, so a change is validated, audited and applied
 * as any other settings change; the pool service fills and drains at once.
 */

import { defaultSize } from "../core/environment.js";
import { withPool } from "../core/warm-pool.js";
import { requirePermission } from "./auth.js";
import { readJson } from "./input.js";
import type { ApiRoutes } from "./routes.js";
import { poolsStatusSchema, poolUpdateSchema } from "./schemas.js";

export function poolRoutes(routes: ApiRoutes): void {
  const { environments, settings } = routes.deps;
  const status = async () =>
    environments.pools
      ? environments.pools.status()
      : {
          supported: false,
          pools: (await settings.get()).pools.map((pool) => ({ ...pool, key: "", ready: 0, filling: 0, failed: 0 })),
          members: [],
          held: { cvms: 0, cpu: 0, memoryGiB: 0, diskGiB: 0 },
        };
  routes.add(
    {
      method: "get",
      path: "/pools",
      summary: "The warm pools: each pool set, its members now, and what they hold of the machine",
      tag: "settings",
      response: poolsStatusSchema,
      errors: [403],
    },
    async (c) => {
      requirePermission(c, "settings:read", "see the warm pools");
      return c.json(await status());
    },
  );
  routes.add(
    {
      method: "put",
      path: "/pools",
      summary:
        "Set one warm pool: keep `count` booted CVMs of the image and size (sizes left out are a create's defaults); 0 removes it",
      tag: "settings",
      body: poolUpdateSchema,
      response: poolsStatusSchema,
      errors: [403],
    },
    async (c) => {
      const actor = requirePermission(c, "settings:write", "change the warm pools");
      const request = await readJson(c, poolUpdateSchema);
      const current = await settings.get();
      const pool = { ...defaultSize(current.limits), ...request };
      await settings.update(actor, { pools: withPool(current.pools, pool) });
      return c.json(await status());
    },
  );
}
