/**
 * `npm run bench`: starts the real services (as `npm test` does), runs every
 * bench/<name>/index.ts, or only those named (`npm run bench -- cvm`), prints
 * each figure as a ratio to a baseline measured in the same run, and writes
 * artifacts/bench.json. Exits non-zero when a figure misses its target or a
 * benchmark fails.
 */

import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ensureDist } from "../scripts/build.js";
import { ensureTestImages } from "../test/harness/images.js";
import {
  ensureHostDocker,
  ensurePostgres,
  ensureRegistry,
  hostDockerSocket,
  postgresUrl,
  registryAddress,
  type Started,
} from "../test/harness/services.js";
import type { BenchModule, BenchResult } from "./types.js";

const root = join(import.meta.dirname, "..");
const artifacts = join(root, "artifacts");

function benchmarks(): string[] {
  return readdirSync(import.meta.dirname, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(import.meta.dirname, entry.name, "index.ts")))
    .map((entry) => entry.name)
    .sort();
}

function format(value: number): string {
  return Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function printTable(results: (BenchResult & { bench: string })[]): void {
  const rows = [
    ["bench", "figure", "value", "baseline", "ratio", "target", "met"],
    ...results.map((r) => [
      r.bench,
      r.name,
      `${format(r.value)} ${r.unit}`,
      r.baseline,
      `${format(r.ratio)}x`,
      r.target ?? "",
      r.pass === undefined ? "" : r.pass ? "yes" : "NO",
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows)
    console.log(
      row
        .map((cell, i) => cell.padEnd(widths[i]))
        .join("  ")
        .trimEnd(),
    );
}

async function main(): Promise<number> {
  mkdirSync(artifacts, { recursive: true });
  const known = benchmarks();
  const requested = process.argv.slice(2);
  const unknown = requested.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    console.error(`no benchmark named ${unknown.join(", ")}; known: ${known.join(", ")}`);
    return 2;
  }
  const chosen = requested.length > 0 ? requested : known;

  const started: Started[] = [];
  const stopAll = async () => {
    for (const service of started.reverse()) {
      await service.stop().catch((error) => console.error(`stopping ${service.name}:`, error));
    }
  };
  process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));
  const results: (BenchResult & { bench: string })[] = [];
  const failures: { bench: string; error: string }[] = [];
  try {
    for (const ensure of [ensureHostDocker, ensureRegistry, ensurePostgres]) {
      const service = await ensure(artifacts);
      if (service) started.push(service);
    }
    // bench/cli and bench/k8s run the compiled bin/cvm, as users do.
    if (await ensureDist()) console.log("dist/: compiled from the sources");
    // Benchmarks read the same variables the tests do.
    Object.assign(process.env, {
      CVM_TEST_PG_URL: postgresUrl,
      CVM_TEST_REGISTRY: registryAddress,
      CVM_TEST_HOST_DOCKER: hostDockerSocket,
      CVM_TEST_ARTIFACTS: artifacts,
      ...(await ensureTestImages()),
    });
    for (const bench of chosen) {
      console.log(`== bench/${bench}`);
      const begun = Date.now();
      try {
        const module = (await import(pathToFileURL(join(import.meta.dirname, bench, "index.ts")).href)) as BenchModule;
        const dir = join(artifacts, "bench", bench);
        mkdirSync(dir, { recursive: true });
        const figures = await module.run({ artifacts: dir, log: (line) => console.log(`   ${line}`) });
        results.push(...figures.map((figure) => ({ bench, ...figure })));
      } catch (error) {
        console.error(`bench/${bench} failed:`, error);
        failures.push({ bench, error: String((error as Error)?.stack ?? error) });
      }
      console.log(`   (${((Date.now() - begun) / 1000).toFixed(0)} s)`);
    }
  } finally {
    await stopAll();
  }
  console.log("");
  printTable(results);
  writeFileSync(
    join(artifacts, "bench.json"),
    `${JSON.stringify({ at: new Date().toISOString(), results, failures }, null, 2)}\n`,
  );
  console.log(`\nwrote ${join("artifacts", "bench.json")}`);
  const missed = results.filter((r) => r.pass === false);
  if (missed.length > 0) console.log(`missed targets: ${missed.map((r) => `${r.bench}/${r.name}`).join(", ")}`);
  return failures.length > 0 || missed.length > 0 ? 1 : 0;
}

process.exitCode = await main();
