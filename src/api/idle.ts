/** Idle stop over the API: when an environment stops unless used, and its own idle time (owner or admin). */

import { actorOf } from "./auth.js";
import { readJson } from "./input.js";
import { type ApiRoutes, param } from "./routes.js";
import { idleStatusSchema, setIdleSchema } from "./workspace-schemas.js";

export function idleRoutes(routes: ApiRoutes): void {
  const { environments, workspace, store, audit } = routes.deps;
  const tag = "environments";

  routes.add(
    {
      method: "get",
      path: "/environments/:ref/idle",
      summary: "The idle time that applies (its own or the site's), when it was last used, and when it stops",
      tag,
      response: idleStatusSchema,
    },
    async (c) => c.json(await workspace.idle.status(await environments.find(actorOf(c), param(c, "ref")))),
  );
  routes.add(
    {
      method: "put",
      path: "/environments/:ref/idle",
      summary: "Set the environment's own idle time in minutes (0: never stops), or null for the site's",
      tag,
      body: setIdleSchema,
      response: idleStatusSchema,
    },
    async (c) => {
      const actor = actorOf(c);
      const environment = await environments.find(actor, param(c, "ref"));
      const { minutes } = await readJson(c, setIdleSchema);
      const before = await store.workspace.idleStopMinutes(environment.id);
      await store.workspace.setIdleStopMinutes(environment.id, minutes ?? undefined, new Date().toISOString());
      await audit.record(
        actor,
        "environment.idle",
        `environment/${environment.id}`,
        { minutes: before ?? null },
        { minutes },
      );
      return c.json(await workspace.idle.status(environment));
    },
  );
}
