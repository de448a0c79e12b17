/**
 * What /metrics exposes, on a registry of this server's own (several servers
 * may share a process in tests).
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { environmentStates } from "../core/environment.js";
import type { Store } from "../core/store.js";

export interface ServerMetrics {
  registry: Registry;
  httpRequests: Counter<"method" | "route" | "status">;
  httpDuration: Histogram<"method" | "route">;
  buildDuration: Histogram<"outcome">;
}

export function createMetrics(store: Store): ServerMetrics {
  const registry = new Registry();
  const httpRequests = new Counter({
    name: "cvm_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: "cvm_http_request_duration_seconds",
    help: "Time to answer an HTTP request, by method and route pattern",
    labelNames: ["method", "route"] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  const buildDuration = new Histogram({
    name: "cvm_build_duration_seconds",
    help: "Time from a build's start to its outcome, by outcome",
    labelNames: ["outcome"] as const,
    buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  new Gauge({
    name: "cvm_environments",
    help: "Environments in the store, by state",
    labelNames: ["state"] as const,
    registers: [registry],
    async collect() {
      const counts = await store.environments.countByState();
      for (const state of environmentStates) this.set({ state }, counts[state] ?? 0);
    },
  });
  return { registry, httpRequests, httpDuration, buildDuration };
}
