/** GET /events: environment changes as they happen, limited to what the caller may see. */

import { can } from "../core/roles.js";
import { actorOf } from "./auth.js";
import type { EnvironmentEvent } from "./contract.js";
import { nap, ndjsonResponse } from "./ndjson.js";
import type { ApiRoutes } from "./routes.js";
import { environmentEventSchema } from "./schemas.js";

const heartbeatMs = 15_000;

export function eventRoutes(routes: ApiRoutes): void {
  const { bus, environments, shutdown, logger } = routes.deps;
  routes.add(
    {
      method: "get",
      path: "/events",
      summary: "Environment changes as NDJSON, with a heartbeat every 15 s",
      tag: "environments",
      response: { ndjson: environmentEventSchema },
    },
    (c) => {
      const actor = actorOf(c);
      const seesAll = can(actor.role, "environments:all");
      return ndjsonResponse(
        async (write, signal) => {
          const queue: EnvironmentEvent[] = [];
          let wake = () => {};
          const unsubscribe = bus.subscribe((event) => {
            if (event.type === "deleted") {
              if (seesAll || event.ownerId === actor.id) queue.push({ type: "deleted", id: event.id });
            } else if (environments.canSee(actor, event.environment)) {
              queue.push(event);
            }
            wake();
          });
          try {
            write({ type: "heartbeat", at: new Date().toISOString() } satisfies EnvironmentEvent);
            let lastBeat = Date.now();
            while (!signal.aborted) {
              for (const event of queue.splice(0)) write(event);
              if (Date.now() - lastBeat >= heartbeatMs) {
                write({ type: "heartbeat", at: new Date().toISOString() } satisfies EnvironmentEvent);
                lastBeat = Date.now();
              }
              await nap(heartbeatMs - (Date.now() - lastBeat), signal, (w) => {
                wake = w;
              });
            }
          } finally {
            unsubscribe();
          }
        },
        shutdown,
        logger,
      );
    },
  );
}
