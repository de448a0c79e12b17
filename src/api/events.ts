/**
 * GET /events: environment changes as they happen, limited to what the
 * caller may see. The stream is held in OpenConnections: it ends when the
 * caller's access ends, or when a new role changes what they may see (the
 * dashboard reconnects and gets the stream the new role allows).
 */

import { can } from "../core/roles.js";
import { actorOf } from "./auth.js";
import type { EnvironmentEvent } from "./contract.js";
import { nap, ndjsonResponse } from "./ndjson.js";
import type { ApiRoutes } from "./routes.js";
import { environmentEventSchema } from "./schemas.js";

const heartbeatMs = 15_000;
/** How often a stream re-reads the store for changes made by other replicas (PostgreSQL only). */
const pollMs = 2_000;

export function eventRoutes(routes: ApiRoutes): void {
  const { bus, environments, store, shutdown, logger, connections } = routes.deps;
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
      const hold = (end: () => void) =>
        connections.hold(c.get("session"), {
          kind: "events",
          allows: (user) => user.id === actor.id && can(user.role, "environments:all") === seesAll,
          end,
        });
      return ndjsonResponse(
        async (write, signal) => {
          const queue: EnvironmentEvent[] = [];
          // The version last sent of each environment, so the store poll and the bus never send one twice.
          const sent = new Map<string, number>();
          const offer = (event: EnvironmentEvent) => {
            if (event.type === "environment") {
              const { id, version } = event.environment;
              if ((sent.get(id) ?? 0) >= version) return;
              sent.set(id, version);
            } else if (event.type === "deleted") {
              sent.delete(event.id);
            }
            queue.push(event);
          };
          let wake = () => {};
          const unsubscribe = bus.subscribe((event) => {
            if (event.type === "deleted") {
              if (seesAll || event.ownerId === actor.id) offer({ type: "deleted", id: event.id });
            } else if (environments.canSee(actor, event.environment)) {
              offer(event);
            }
            wake();
          });
          // With a shared store, other replicas change environments too: the store is read every few seconds.
          const visible = () => store.environments.list(seesAll ? {} : { ownerId: actor.id });
          const poll = !store.soleWriter;
          if (poll) for (const e of await visible()) sent.set(e.id, e.version);
          let lastPoll = Date.now();
          try {
            write({ type: "heartbeat", at: new Date().toISOString() } satisfies EnvironmentEvent);
            let lastBeat = Date.now();
            while (!signal.aborted) {
              if (poll && Date.now() - lastPoll >= pollMs) {
                lastPoll = Date.now();
                const current = await visible();
                const ids = new Set(current.map((e) => e.id));
                for (const environment of current) offer({ type: "environment", environment });
                for (const id of [...sent.keys()].filter((id) => !ids.has(id))) offer({ type: "deleted", id });
              }
              for (const event of queue.splice(0)) write(event);
              if (Date.now() - lastBeat >= heartbeatMs) {
                write({ type: "heartbeat", at: new Date().toISOString() } satisfies EnvironmentEvent);
                lastBeat = Date.now();
              }
              const untilBeat = heartbeatMs - (Date.now() - lastBeat);
              await nap(poll ? Math.min(untilBeat, pollMs) : untilBeat, signal, (w) => {
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
