/**
 * `npm test`: starts the real services the tests need (Docker engine,
 * PostgreSQL, registry, test images), runs every test file with node's test
 * runner, and stops what it started. `npm test -- FILE...` runs only those
 * files. Node's own summary closes the output.
 */

import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
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

const root = join(import.meta.dirname, "..");
const artifacts = join(root, "artifacts");

function testFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir)) {
    if (entry === "node_modules" || entry === "dist") continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) found.push(...testFiles(path));
    else if (/\.test\.tsx?$/.test(entry)) found.push(path);
  }
  return found;
}

async function main(): Promise<number> {
  mkdirSync(artifacts, { recursive: true });
  const requested = process.argv.slice(2);
  const files = requested.length > 0 ? requested : [...testFiles(join(root, "src")), ...testFiles(join(root, "test"))];

  const started: Started[] = [];
  const stopAll = async () => {
    for (const service of started.reverse()) {
      await service.stop().catch((error) => console.error(`stopping ${service.name}:`, error));
    }
  };
  process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));
  try {
    for (const ensure of [ensureHostDocker, ensureRegistry, ensurePostgres]) {
      const service = await ensure(artifacts);
      if (service) started.push(service);
    }
    const images = await ensureTestImages();
    const env = {
      ...process.env,
      CVM_TEST_PG_URL: postgresUrl,
      CVM_TEST_REGISTRY: registryAddress,
      CVM_TEST_HOST_DOCKER: hostDockerSocket,
      CVM_TEST_ARTIFACTS: artifacts,
      // Every test server checks its answers against its OpenAPI document (src/api/conformance.ts).
      CVM_CHECK_RESPONSES: "1",
      ...images,
    };
    const concurrency = process.env.CVM_TEST_CONCURRENCY ?? "2";
    console.log(`running ${files.length} test files: ${files.map((f) => relative(root, f)).join(" ")}`);
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files],
      { cwd: root, env, stdio: "inherit" },
    );
    return await new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? 1)));
  } finally {
    await stopAll();
  }
}

process.exitCode = await main();
