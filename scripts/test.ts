/**
 * `npm test [-- FILE|DIR...]` and `npm run test:unit` (scripts/test.sh runs
 * this once node_modules is installed). What each test file needs follows
 * from its path (`needsByPath`): only what the chosen files need is started or
 * built, the Debian packages are checked (scripts/provision.sh) only when some
 * file needs anything, and what was started here is stopped at the end. So a
 * unit test beside its module starts nothing, and `--unit` runs every file
 * that needs nothing. Node's own summary closes the output; a skip that gives
 * no reason fails the run.
 */

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import type { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { run } from "node:test";
import { spec } from "node:test/reporters";
import type { Started } from "../test/harness/services.js";

/**
 * - docker, registry, postgres: the real services (test/harness/services.ts),
 *   reused when already answering;
 * - images: the test images (built with the host's engine, pushed to the registry);
 * - nodevm: the node VM's image, for tests that boot it under emulation;
 * - kube: the Kubernetes binaries, for tests that start a control plane;
 * - schemathesis: the API fuzzer from PyPI, in a virtualenv in the machine cache;
 * - dist: the compiled CLI and server (`npm run build`'s dist/), for tests that run bin/cvm as users do.
 */
type Need = "docker" | "registry" | "postgres" | "images" | "nodevm" | "kube" | "schemathesis" | "dist";

const services: Need[] = ["docker", "registry", "postgres", "images"];

/**
 * What a test file needs: the entry with the longest path prefix that matches
 * the file's path in the repository. Unit tests (beside their module) need
 * nothing; a test under test/ needs the real services unless listed with less.
 */
const needsByPath: Record<string, Need[]> = {
  "": [],
  // The store's suite runs on PostgreSQL as well as SQLite.
  "src/store/store.test.ts": ["postgres"],
  "test/": services,
  "test/cli/": [...services, "dist"],
  "test/infra/doctor.test.ts": [...services, "dist"],
  "test/infra/cluster-cli.test.ts": ["dist"],
  // The fake provider; PostgreSQL for the replicas' shared throttle and the pg_dump answer
  // (and the compiled cvm, whose `admin backup` is tested).
  "test/api/attacks.test.ts": ["postgres"],
  "test/api/backup.test.ts": ["postgres", "dist"],
  "test/api/transport.test.ts": [],
  "test/api/fuzz.test.ts": ["schemathesis"],
  "test/lint.test.ts": [],
  "test/infra/cluster-checks.test.ts": ["kube", "dist"],
  "test/docker/standard-environment.test.ts": [...services, "dist"],
  // iptables only, with chains it makes up.
  "test/docker/firewall-sweep.test.ts": [],
  // A real `cvm server` process, killed and started again.
  "test/docker/crash-cycles.test.ts": [...services, "dist"],
  "test/docker/crash-restart.test.ts": [...services, "dist"],
  "test/k8s/": [...services, "kube", "dist"],
  "test/nodevm/": ["images", "nodevm"],
};

/**
 * The longest files, started first in this order so that the many short ones
 * fill the other slots meanwhile rather than one long file ending the run alone.
 */
const startFirst = [
  "test/nodevm/",
  "test/k8s/",
  "test/docker/crash-cycles.test.ts",
  "test/infra/cluster-checks.test.ts",
  "test/api/fuzz.test.ts",
  "test/lint.test.ts",
];

const root = join(import.meta.dirname, "..");
const artifacts = join(root, "artifacts");

function needsOf(file: string): Need[] {
  const path = relative(root, file);
  const prefix = Object.keys(needsByPath)
    .filter((p) => path.startsWith(p))
    .reduce((a, b) => (b.length > a.length ? b : a));
  const needs = new Set(needsByPath[prefix]);
  // Images are built with the host's engine and served from the registry.
  if (needs.has("images")) for (const need of ["docker", "registry"] as const) needs.add(need);
  return [...needs];
}

function testFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith(".") || ["node_modules", "dist", "artifacts"].includes(entry)) continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) found.push(...testFiles(path));
    else if (/\.test\.tsx?$/.test(entry)) found.push(path);
  }
  return found.sort();
}

/** The files to run: those named (a directory names its test files), every file, or with --unit every file that needs nothing. */
function chooseFiles(args: string[]): string[] {
  for (const path of Object.keys(needsByPath)) {
    if (path.endsWith(".ts") && !existsSync(join(root, path)))
      throw new Error(`the needs table names ${path}, which is gone`);
  }
  const unit = args.includes("--unit");
  const named = args.filter((a) => a !== "--unit");
  if (unit && named.length > 0) throw new Error("--unit runs every unit test: give files without it");
  if (unit) return testFiles(root).filter((file) => needsOf(file).length === 0);
  if (named.length === 0) return testFiles(root);
  // npm runs scripts from the package root; INIT_CWD is where the command was typed.
  const from = process.env.INIT_CWD ?? process.cwd();
  return named.flatMap((arg) => {
    const path = resolve(from, arg);
    if (!existsSync(path)) throw new Error(`${arg}: no such test file or directory`);
    return statSync(path).isDirectory() ? testFiles(path) : [path];
  });
}

/** Starts the services the files need and builds what they use; returns the variables that name them for the tests. */
async function prepare(needs: Set<Need>, started: Started[]): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    CVM_TEST_ARTIFACTS: artifacts,
    // Every test server checks its answers against its OpenAPI document (src/api/conformance.ts).
    CVM_CHECK_RESPONSES: "1",
    // The whole path on a real node takes up to 13 minutes on a busy machine: CI runs it (.ci/run), elsewhere ask for it.
    ...(process.env.CI && process.env.CVM_TEST_REAL_NODE === undefined ? { CVM_TEST_REAL_NODE: "1" } : {}),
  };
  if (needs.size === 0) return env;
  const harness = await import("../test/harness/services.js");
  const start = async (ensure: (logDir: string) => Promise<Started | undefined>) => {
    const service = await ensure(artifacts);
    if (service) started.push(service);
  };
  if (needs.has("docker")) {
    await start(harness.ensureHostDocker);
    env.CVM_TEST_HOST_DOCKER = harness.hostDockerSocket;
  }
  if (needs.has("registry")) {
    await start(harness.ensureRegistry);
    env.CVM_TEST_REGISTRY = harness.registryAddress;
  }
  if (needs.has("postgres")) {
    await start(harness.ensurePostgres);
    env.CVM_TEST_PG_URL = harness.postgresUrl;
  }

  // Built side by side: on a fresh machine the Kubernetes binaries take most of the time.
  const builds: Promise<unknown>[] = [];
  if (needs.has("images")) {
    const { ensureTestImages } = await import("../test/harness/images.js");
    builds.push(ensureTestImages().then((images) => Object.assign(env, images)));
  }
  if (needs.has("dist")) builds.push(prepareDist());
  if (needs.has("nodevm")) builds.push(prepareNodeVm());
  if (needs.has("kube")) builds.push(prepareKube());
  if (needs.has("schemathesis")) {
    const { ensureSchemathesis } = await import("../test/harness/schemathesis.js");
    builds.push(ensureSchemathesis());
  }
  const failed = (await Promise.allSettled(builds)).find((result) => result.status === "rejected");
  if (failed) throw failed.reason;
  return env;
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

async function prepareDist(): Promise<void> {
  const { ensureDist } = await import("./build.js");
  const begun = Date.now();
  if (await ensureDist()) console.log(`dist/: compiled from the sources in ${seconds(begun)}`);
}

async function prepareNodeVm(): Promise<void> {
  const { nodeVmUnavailable } = await import("../test/harness/nodevm.js");
  const why = await nodeVmUnavailable();
  if (why) return console.log(`node VM: not built, ${why} (its tests skip)`);
  const { ensureNodeVm } = await import("../images/nodevm/build.js");
  const begun = Date.now();
  const image = await ensureNodeVm({ log: (line) => console.log(line) });
  console.log(`node VM: image ${image.hash} ready in ${seconds(begun)}`);
}

async function prepareKube(): Promise<void> {
  const { ensureKubeBinaries, kubeUnavailable } = await import("../test/harness/kube.js");
  const why = kubeUnavailable();
  if (why) return console.log(`kubernetes: not built, ${why} (its tests skip)`);
  const begun = Date.now();
  await ensureKubeBinaries(["kube-apiserver", "kwok", "helm"]);
  console.log(`kubernetes: binaries ready in ${seconds(begun)}`);
}

/**
 * The most one test file may take: the longest here took 5 minutes, and on a fresh machine the real node's
 * file also builds the kubelet; CI gives the whole run 90.
 */
const fileTimeoutMs = 40 * 60_000;

const noReason = 'SKIPPED WITHOUT A REASON: say why, t.skip("why") or { skip: "why" }';

/** Runs the files with node's test runner and its spec reporter; true when every test passed and every skip said why. */
async function runTests(files: string[]): Promise<boolean> {
  const concurrency = Number(process.env.CVM_TEST_CONCURRENCY ?? 2);
  let failures = 0;
  let bareSkips = 0;
  // A file whose tests are over ends then, even with a handle left open: a test that timed out in its
  // cleanup must fail, not keep its process (and the whole run) waiting forever. And no file runs longer
  // than fileTimeoutMs: one stuck without a timeout of its own fails, its process killed, and the run goes on.
  const events = run({ files, concurrency, forceExit: true, timeout: fileTimeoutMs });
  events.on("test:fail", (data) => {
    if (!data.todo) failures++;
  });
  const marked = events.compose(async function* (source: AsyncIterable<{ type: string; data: { skip?: unknown } }>) {
    for await (const event of source) {
      if (event.type === "test:pass" && event.data.skip === true) {
        bareSkips++;
        event.data.skip = noReason;
      }
      yield event;
    }
  }) as Readable;
  const output = marked.compose(new spec());
  output.pipe(process.stdout, { end: false });
  await finished(output);
  return failures === 0 && bareSkips === 0;
}

async function main(): Promise<number> {
  const files = chooseFiles(process.argv.slice(2));
  const needs = new Set(files.flatMap(needsOf));
  const rank = (file: string) => {
    const first = startFirst.findIndex((prefix) => relative(root, file).startsWith(prefix));
    return first === -1 ? startFirst.length : first;
  };
  files.sort((a, b) => rank(a) - rank(b));
  mkdirSync(artifacts, { recursive: true });
  // The Debian packages: installed as root, otherwise provision.sh says in one line what to run.
  if (needs.size > 0 && spawnSync("bash", [join(root, "scripts/provision.sh")], { stdio: "inherit" }).status !== 0) {
    return 1;
  }

  const started: Started[] = [];
  const stopAll = async () => {
    for (const service of started.reverse()) {
      await service.stop().catch((error) => console.error(`stopping ${service.name}:`, error));
    }
  };
  process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));
  try {
    const needed = [...needs].join(", ") || "nothing";
    Object.assign(process.env, await prepare(needs, started));
    console.log(
      `running ${files.length} test files (needing ${needed}): ${files.map((f) => relative(root, f)).join(" ")}`,
    );
    return (await runTests(files)) ? 0 : 1;
  } finally {
    await stopAll();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error(`npm test: ${(error as Error).message}`);
  process.exitCode = 1;
}
