/**
 * GET /metrics for Prometheus: on the main address, or on an address of its
 * own (--metrics-listen, such as a loopback or cluster-internal one), and,
 * when a token is set (CVM_METRICS_TOKEN), only for a
 * scraper that sends it as a Bearer token. It shows counts, not secrets, but
 * they say how busy the server is and who has how many environments.
 */

import { timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import type { ServerMetrics } from "../server/metrics.js";

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function metricsEndpoint(metrics: ServerMetrics, token: string | undefined) {
  return async (c: Context) => {
    if (token) {
      const given = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
      if (!sameSecret(given, token)) {
        return c.json({ message: "/metrics needs the metrics token: Authorization: Bearer <token>" }, 401, {
          "www-authenticate": 'Bearer realm="cvm metrics"',
        });
      }
    }
    return c.body(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType });
  };
}
