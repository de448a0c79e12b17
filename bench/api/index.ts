/**
 * bench/api: requests per second and p99 latency of listing (a page at a
 * time) and showing environments with 1,000 environments in the store,
 * against /healthz on the same server in the same run. The server runs in its own process; the load
 * comes from a fixed number of concurrent keep-alive connections on loopback.
 */

import { spawn } from "node:child_process";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { BenchContext, BenchResult } from "../types.js";

const concurrency = 8;
const warmupMs = 500;
/** Per target, split over the rounds. */
const measureMs = 4_000;
const rounds = 4;
/** Bounded even if the server is very fast. */
const maxRequests = 200_000;

interface Served {
  url: string;
  memberToken: string;
  adminToken: string;
  memberEnvironment: string;
  deepCursor: string;
  total: number;
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  bytes: number;
}

function get(agent: Agent, url: URL, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let bytes = 0;
      res.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
      });
      res.on("end", () =>
        res.statusCode === 200 ? resolve(bytes) : reject(new Error(`${url.pathname}: HTTP ${res.statusCode}`)),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

interface Target {
  path: string;
  token?: string;
  latencies: number[];
  bytes: number;
  seconds: number;
}

/** Keeps `concurrency` requests in flight on one target for `ms`; records them when asked. */
async function phase(agent: Agent, base: string, target: Target, ms: number, record: boolean): Promise<void> {
  const url = new URL(target.path, base);
  const started = performance.now();
  const deadline = started + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline && target.latencies.length < maxRequests) {
        const sent = performance.now();
        const size = await get(agent, url, target.token);
        if (record) {
          target.latencies.push(performance.now() - sent);
          target.bytes += size;
        }
      }
    }),
  );
  if (record) target.seconds += (performance.now() - started) / 1000;
}

/**
 * Measures every target in interleaved rounds, so a change in the machine's
 * load during the run (it is shared) weighs on the baseline and the figures alike.
 */
async function measure(base: string, targets: Target[]): Promise<Map<Target, Load>> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  for (const target of targets) await phase(agent, base, target, warmupMs, false);
  for (let round = 0; round < rounds; round++) {
    for (const target of targets) await phase(agent, base, target, measureMs / rounds, true);
  }
  agent.destroy();
  return new Map(
    targets.map((target) => {
      const sorted = [...target.latencies].sort((a, b) => a - b);
      return [
        target,
        {
          rps: sorted.length / target.seconds,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          requests: sorted.length,
          bytes: target.bytes / Math.max(1, sorted.length),
        },
      ];
    }),
  );
}

async function startServerProcess(log: (line: string) => void): Promise<{ served: Served; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "server.ts")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stderr.on("data", (chunk: Buffer) => log(chunk.toString().trimEnd()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    new Promise<string>((resolve) => lines.once("line", resolve)),
    exited.then((code) => {
      throw new Error(`the bench server exited with ${code} before serving`);
    }),
  ]);
  return {
    served: JSON.parse(first) as Served,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

const fixed = (n: number, digits = 1) => Number(n.toFixed(digits));

export async function run(context?: BenchContext): Promise<BenchResult[]> {
  const log = context?.log ?? ((line: string) => console.log(line));
  log("bench/api: starting a server with 1,000 environments (SQLite)");
  const { served, stop } = await startServerProcess(log);
  try {
    const target = (path: string, token?: string): Target => ({ path, token, latencies: [], bytes: 0, seconds: 0 });
    const healthz = target("/healthz");
    interface Figure {
      name: string;
      target: Target;
      /** Issue 2's goals for a member's list and a show; issue 13's for an admin's page. */
      p99Under?: number;
      rpsOfHealthz?: number;
    }
    const figures: Figure[] = [
      {
        name: "list (a member's own, 10 of 1,000)",
        target: target("/api/v1/environments", served.memberToken),
        p99Under: 20,
        rpsOfHealthz: 0.5,
      },
      {
        name: "list (admin, everyone's: first page of 100 of 1,000)",
        target: target("/api/v1/environments?owner=all&limit=100", served.adminToken),
        p99Under: 30,
      },
      {
        name: "list (admin, everyone's: 10th page of 100, by cursor)",
        target: target(
          `/api/v1/environments?owner=all&limit=100&cursor=${encodeURIComponent(served.deepCursor)}`,
          served.adminToken,
        ),
        p99Under: 30,
      },
      {
        name: "list (admin, filtered in the store: stopped CVMs, page of 100)",
        target: target("/api/v1/environments?owner=all&state=stopped&kind=cvm&limit=100", served.adminToken),
      },
      {
        name: "show (by id)",
        target: target(`/api/v1/environments/${served.memberEnvironment}`, served.memberToken),
        p99Under: 20,
      },
    ];
    const loads = await measure(served.url, [healthz, ...figures.map((f) => f.target)]);
    const health = loads.get(healthz) as Load;
    log(`  /healthz: ${health.rps.toFixed(0)} req/s, p50 ${health.p50.toFixed(2)} ms, p99 ${health.p99.toFixed(2)} ms`);
    const results: BenchResult[] = [];
    for (const { name, target: t, p99Under, rpsOfHealthz } of figures) {
      const measured = loads.get(t) as Load;
      log(
        `  ${name}: ${measured.rps.toFixed(0)} req/s, p50 ${measured.p50.toFixed(2)} ms, p99 ${measured.p99.toFixed(2)} ms, ${(measured.bytes / 1024).toFixed(1)} KiB per answer`,
      );
      results.push({
        name: `${name}: throughput`,
        value: fixed(measured.rps, 0),
        unit: "req/s",
        baseline: `/healthz: ${health.rps.toFixed(0)} req/s`,
        ratio: fixed(measured.rps / health.rps, 2),
        ...(rpsOfHealthz === undefined
          ? {}
          : { target: `>= ${rpsOfHealthz}x /healthz`, pass: measured.rps >= rpsOfHealthz * health.rps }),
      });
      results.push({
        name: `${name}: p99 latency`,
        value: fixed(measured.p99, 2),
        unit: "ms",
        baseline: `/healthz p99: ${health.p99.toFixed(2)} ms`,
        ratio: fixed(measured.p99 / health.p99, 2),
        ...(p99Under === undefined ? {} : { target: `< ${p99Under} ms`, pass: measured.p99 < p99Under }),
      });
    }
    return results;
  } finally {
    await stop();
  }
}
