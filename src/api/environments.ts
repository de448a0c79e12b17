/** Environments: list, create, show, the actions, builds and the streamed build log. */

import type { BuildLogLine } from "../core/build.js";
import { actorOf } from "./auth.js";
import type { EnvironmentList, LogStreamItem } from "./contract.js";
import { readJson, readQuery } from "./input.js";
import { nap, ndjsonResponse } from "./ndjson.js";
import { type ApiRoutes, param } from "./routes.js";
import {
  buildListSchema,
  createEnvironmentSchema,
  deleteQuerySchema,
  environmentListSchema,
  environmentQuerySchema,
  environmentSchema,
  isSet,
  logStreamItemSchema,
  logsQuerySchema,
  rebuildSchema,
} from "./schemas.js";

/** How often a follower re-reads the store when no local event woke it (lines written by another replica). */
const pollMs = 500;

export function environmentRoutes(routes: ApiRoutes): void {
  const { environments, store, bus, shutdown, logger, connections } = routes.deps;
  const tag = "environments";

  routes.add(
    {
      method: "get",
      path: "/environments",
      summary: "Environments, newest first, a page at a time: yours, or (admins and managers) anyone's",
      tag,
      query: environmentQuerySchema,
      response: environmentListSchema,
      errors: [403],
    },
    async (c) => {
      return c.json<EnvironmentList>(await environments.list(actorOf(c), readQuery(c, environmentQuerySchema)));
    },
  );
  routes.add(
    {
      method: "post",
      path: "/environments",
      summary: "Create an environment; its build runs in the background",
      tag,
      body: createEnvironmentSchema,
      response: environmentSchema,
      status: 201,
      errors: [409],
    },
    async (c) => c.json(await environments.create(actorOf(c), await readJson(c, createEnvironmentSchema)), 201),
  );
  routes.add(
    {
      method: "get",
      path: "/environments/:ref",
      summary: "One environment, by id or by the name of one of yours",
      tag,
      response: environmentSchema,
    },
    async (c) => c.json(await environments.show(actorOf(c), param(c, "ref"))),
  );
  routes.add(
    {
      method: "post",
      path: "/environments/:ref/start",
      summary: "Start a stopped or failed environment",
      tag,
      response: environmentSchema,
      errors: [409],
    },
    async (c) => c.json(await environments.start(actorOf(c), param(c, "ref"))),
  );
  routes.add(
    {
      method: "post",
      path: "/environments/:ref/stop",
      summary: "Stop an environment (aborting its build if one runs); answers once stopped",
      tag,
      response: environmentSchema,
      errors: [409],
    },
    async (c) => c.json(await environments.stop(actorOf(c), param(c, "ref"))),
  );
  routes.add(
    {
      method: "post",
      path: "/environments/:ref/rebuild",
      summary: "Rebuild from the image, or another one, keeping home (and, when asked, the inner Docker's data)",
      tag,
      body: rebuildSchema,
      response: environmentSchema,
      errors: [409],
    },
    async (c) => {
      const request = await readJson(c, rebuildSchema);
      return c.json(await environments.rebuild(actorOf(c), param(c, "ref"), request));
    },
  );
  routes.add(
    {
      method: "delete",
      path: "/environments/:ref",
      summary: "Delete an environment and its workload; home too unless keepHome=1",
      tag,
      query: deleteQuerySchema,
      response: null,
      errors: [409],
    },
    async (c) => {
      const { keepHome } = readQuery(c, deleteQuerySchema);
      await environments.remove(actorOf(c), param(c, "ref"), { keepHome: isSet(keepHome) });
      return c.body(null, 204);
    },
  );
  routes.add(
    {
      method: "get",
      path: "/environments/:ref/builds",
      summary: "The environment's builds, with their outcomes",
      tag,
      response: buildListSchema,
    },
    async (c) => c.json({ items: await environments.builds(actorOf(c), param(c, "ref")) }),
  );
  routes.add(
    {
      method: "get",
      path: "/environments/:ref/logs",
      summary: "A build's log as NDJSON; with follow=1, live lines until the build ends with {end: true, outcome}",
      tag,
      query: logsQuerySchema,
      response: { ndjson: logStreamItemSchema },
    },
    async (c) => {
      const q = readQuery(c, logsQuerySchema);
      const build = await environments.buildOf(actorOf(c), param(c, "ref"), q.build);
      const follow = isSet(q.follow);
      const environment = follow ? await store.environments.get(build.environmentId) : undefined;
      // A followed log may stay open for a long build: it ends when the caller's access does.
      const hold = environment
        ? (end: () => void) =>
            connections.hold(c.get("session"), {
              kind: "logs",
              allows: (user) => environments.canSee(user, environment),
              end,
            })
        : undefined;
      return ndjsonResponse(
        async (write, signal) => {
          let after = q.after ?? 0;
          const send = (item: LogStreamItem) => write(item);
          const flush = async () => {
            const lines: BuildLogLine[] = await store.builds.logs(build.id, after);
            for (const line of lines) send(line);
            if (lines.length > 0) after = lines[lines.length - 1].seq;
          };
          let wake = () => {};
          let dirty = false;
          const unsubscribe = bus.onBuildActivity(build.id, () => {
            dirty = true;
            wake();
          });
          try {
            for (;;) {
              dirty = false;
              // The build's end is read before its lines, so every line written before the end is sent.
              const current = await store.builds.get(build.id);
              await flush();
              if (current?.finishedAt) return send({ end: true, outcome: current.outcome });
              // Deleted with its environment: the build is over, whatever a follower last saw.
              if (!current) return send({ end: true, outcome: "deleted" });
              if (!follow || signal.aborted) return;
              if (dirty) continue;
              await nap(pollMs, signal, (w) => {
                wake = w;
              });
            }
          } finally {
            unsubscribe();
          }
        },
        shutdown,
        logger,
        hold,
      );
    },
  );
}
