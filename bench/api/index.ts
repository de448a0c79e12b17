/**
 * bench/api: requests per second and p99 latency of listing and showing
 * environments with 1,000 environments in the store, against /healthz on the
 * same server in the same run. The server runs in its own process; the load
 * comes from a fixed number of concurrent keep-alive connections on loopback.
 */

import { spawn } from "node:child_process";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { BenchContext, BenchResult } from "../types.js";

const concurrency = 8;
const warmupMs = 1_000;
const measureMs = 4_000;
/** Bounded even if the server is very fast. */
const maxRequests = 200_000;

interface Served {
  url: string;
  memberToken: string;
  adminToken: string;
  memberEnvironment: string;
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

async function load(base: string, path: string, token?: string): Promise<Load> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL(path, base);
  const latencies: number[] = [];
  let bytes = 0;
  const phase = async (ms: number, record: boolean) => {
    const deadline = performance.now() + ms;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline && latencies.length < maxRequests) {
          const started = performance.now();
          const size = await get(agent, url, token);
          if (record) {
            latencies.push(performance.now() - started);
            bytes += size;
          }
        }
      }),
    );
  };
  await phase(warmupMs, false);
  const started = performance.now();
  await phase(measureMs, true);
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    rps: latencies.length / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    requests: latencies.length,
    bytes: bytes / Math.max(1, latencies.length),
  };
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
    const figures: [string, string, string | undefined][] = [
      ["list (a member's own, 10 of 1,000)", "/api/v1/environments", served.memberToken],
      ["list all (admin, 1,000 of 1,000)", "/api/v1/environments?owner=all", served.adminToken],
      ["show (by id)", `/api/v1/environments/${served.memberEnvironment}`, served.memberToken],
    ];
    const health = await load(served.url, "/healthz");
    log(`  /healthz: ${health.rps.toFixed(0)} req/s, p50 ${health.p50.toFixed(2)} ms, p99 ${health.p99.toFixed(2)} ms`);
    const results: BenchResult[] = [];
    for (const [name, path, token] of figures) {
      const measured = await load(served.url, path, token);
      log(
        `  ${name}: ${measured.rps.toFixed(0)} req/s, p50 ${measured.p50.toFixed(2)} ms, p99 ${measured.p99.toFixed(2)} ms, ${(measured.bytes / 1024).toFixed(1)} KiB per answer`,
      );
      const targeted = !name.startsWith("list all");
      results.push({
        name: `${name}: throughput`,
        value: fixed(measured.rps, 0),
        unit: "req/s",
        baseline: `/healthz: ${health.rps.toFixed(0)} req/s`,
        ratio: fixed(measured.rps / health.rps, 2),
        ...(targeted && name.startsWith("list")
          ? { target: ">= 0.5x /healthz", pass: measured.rps >= 0.5 * health.rps }
          : {}),
      });
      results.push({
        name: `${name}: p99 latency`,
        value: fixed(measured.p99, 2),
        unit: "ms",
        baseline: `/healthz p99: ${health.p99.toFixed(2)} ms`,
        ratio: fixed(measured.p99 / health.p99, 2),
        ...(targeted ? { target: "< 20 ms", pass: measured.p99 < 20 } : {}),
      });
    }
    return results;
  } finally {
    await stop();
  }
}
