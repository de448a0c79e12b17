/**
 * What a user starts: the compiled `cvm` (bin/cvm over dist/), and what each
 * command pulls in. A command loads only what it needs: help, the API's
 * commands (with `version`, the guidance of a mistyped command and a start's
 * progress) and `ssh` never load the server, its schemas, the engine or
 * Kubernetes clients, or the database drivers, which cost a second of startup
 * when they did. The module list is the check (timings on a shared machine
 * are printed, not asserted; bench/cli measures them). `cvm server` runs from
 * dist/ too.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as fixtures from "../../src/testing/fixtures.js";
import { compiledCvm, cvmBin, runCvm } from "../harness/cli.js";
import { freePort } from "../harness/ports.js";
import { startTestServer, type TestServer, testDockerHost } from "../harness/server.js";

const root = join(import.meta.dirname, "..", "..");
const moduleLog = join(import.meta.dirname, "..", "harness", "module-log.mjs");
/** Every runtime dependency but the CLI's own parser is heavy for a command that does not need it. */
const heavy = Object.keys(
  (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies: Record<string, string> })
    .dependencies,
).filter((name) => name !== "commander");

let scratch: string;
let server: TestServer;
let configDir: string;

before(async () => {
  await compiledCvm();
  scratch = mkdtempSync(join(tmpdir(), "cvm-startup-"));
  configDir = join(scratch, "config");
  server = await startTestServer({ skipReconcile: true });
  const admin = await server.firstAdmin();
  mkdirSync(configDir, { recursive: true });
  writeFileSync(join(configDir, "config.json"), JSON.stringify({ url: server.url, token: admin.token }));
  for (let i = 0; i < 100; i++) {
    await server.server.store.environments.create(
      fixtures.environment({ owner: admin.user, name: `box-${i}`, cvm: i % 2 === 0, state: "stopped" }),
    );
  }
});

after(async () => {
  await server?.close();
  rmSync(scratch, { recursive: true, force: true });
});

interface Loaded {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  /** Packages from node_modules, by name. */
  packages: Set<string>;
  /** cvm's own modules, relative to the checkout. */
  own: string[];
}

function packageOf(url: string): string | undefined {
  const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  return match?.[1];
}

async function loaded(args: string[]): Promise<Loaded> {
  const log = join(scratch, `modules-${Math.random().toString(36).slice(2)}`);
  writeFileSync(log, "");
  const started = performance.now();
  const result = await runCvm(args, {
    nodeOptions: ["--import", moduleLog],
    env: { ...process.env, CVM_MODULE_LOG: log, CVM_CONFIG_DIR: configDir },
    timeout: 60_000,
  });
  const ms = performance.now() - started;
  const urls = readFileSync(log, "utf8").split("\n").filter(Boolean);
  rmSync(log);
  const own = urls
    .filter((url) => url.startsWith(`file://${root}/`) && !url.includes("/node_modules/"))
    .map((url) => url.slice(`file://${root}/`.length));
  const packages = new Set(urls.map(packageOf).filter((name): name is string => name !== undefined));
  return { ...result, ms, packages, own };
}

function assertOnly(result: Loaded, allowed: string[], what: string): void {
  const pulled = heavy.filter((name) => result.packages.has(name) && !allowed.includes(name));
  assert.deepEqual(pulled, [], `${what} loaded ${pulled.join(", ")}`);
  const sources = result.own.filter((path) => !path.startsWith("dist/") && path !== "bin/cvm");
  assert.deepEqual(sources, [], `${what} ran sources instead of dist/`);
}

test("cvm --help runs the compiled CLI, lists every command, and loads only the argument parser", async (t) => {
  const result = await loaded(["--help"]);
  assert.equal(result.code, 0, result.stderr);
  for (const command of ["login", "env", "ssh", "server", "doctor", "supervisor"]) {
    assert.match(result.stdout, new RegExp(`^  ${command}\\b`, "m"));
  }
  assert.ok(result.own.includes("dist/cli/main.js"));
  assertOnly(result, [], "cvm --help");
  t.diagnostic(`cvm --help: ${result.ms.toFixed(0)} ms, ${result.own.length} of cvm's modules`);
});

test("each command group's help loads nothing heavy, the server's and the supervisor's included", async () => {
  for (const group of [
    "env",
    "users",
    "admin",
    "tokens",
    "ssh",
    "server",
    "image",
    "doctor",
    "cluster",
    "supervisor",
    "version",
  ]) {
    const result = await loaded([group, "--help"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Usage: cvm /m);
    assertOnly(result, [], `cvm ${group} --help`);
  }
});

test("cvm env list prints 100 environments without the server's schemas, clients or drivers", async (t) => {
  const result = await loaded(["env", "list"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^NAME +STATE +KIND/);
  assert.match(result.stdout, /^box-99 +stopped/m);
  assertOnly(result, [], "cvm env list");
  const json = await loaded(["env", "list", "--json"]);
  assert.equal((JSON.parse(json.stdout) as unknown[]).length, 100);
  t.diagnostic(`cvm env list (100 environments): ${result.ms.toFixed(0)} ms`);
});

test("cvm users list and whoami load nothing heavy either", async () => {
  for (const args of [["users", "list"], ["whoami"]]) {
    const result = await loaded(args);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /admin@example\.com/);
    assertOnly(result, [], `cvm ${args.join(" ")}`);
  }
});

test("cvm version, tokens list, a mistyped command and a start's guidance load nothing heavy", async () => {
  const version = await loaded(["version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^Client: cvm \d+\.\d+\.\d+/m);
  assert.match(version.stdout, /^Server: .*\d+\.\d+\.\d+/m);
  assertOnly(version, [], "cvm version");

  const tokens = await loaded(["tokens", "list"]);
  assert.equal(tokens.code, 0, tokens.stderr);
  assertOnly(tokens, [], "cvm tokens list");

  const mistyped = await loaded(["evn", "list"]);
  assert.equal(mistyped.code, 1);
  assert.match(mistyped.stderr, /Did you mean env\?/);
  assertOnly(mistyped, [], "cvm evn list");

  // A start that cannot begin: the command's progress and next-step modules load, and still nothing heavy.
  const start = await loaded(["env", "start", "no-such-box"]);
  assert.equal(start.code, 1);
  assert.match(start.stderr, /^cvm: .*not found/im);
  assertOnly(start, [], "cvm env start");
});

test("cvm ssh loads the WebSocket client and nothing else heavy; an unknown environment is a clear error", async () => {
  const result = await loaded(["ssh", "no-such-box", "--", "true"]);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /^cvm: .*not found/im);
  assert.ok(result.packages.has("ws"), "ssh connects over ws");
  assertOnly(result, ["ws"], "cvm ssh");
});

test("dist/ mirrors src/: a module for every source, and the files modules read beside themselves", () => {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
    );
  const src = join(root, "src");
  for (const file of walk(src).filter((f) => !/\.test\.tsx?$/.test(f))) {
    const built = join(root, "dist", relative(src, file)).replace(/\.tsx?$/, ".js");
    assert.ok(existsSync(built), `${relative(root, built)} is missing`);
  }
});

test("cvm server runs from dist/ and answers its API", async () => {
  const port = await freePort();
  const log = join(scratch, "server-modules");
  writeFileSync(log, "");
  const dataDir = join(scratch, "server-data");
  const child = spawn(
    process.execPath,
    [
      "--import",
      moduleLog,
      cvmBin,
      "server",
      "--listen",
      `127.0.0.1:${port}`,
      "--data-dir",
      dataDir,
      "--log-level",
      "warn",
      ...(testDockerHost ? ["--docker-host", testDockerHost] : []),
    ],
    { env: { ...process.env, CVM_MODULE_LOG: log }, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  try {
    const url = `http://127.0.0.1:${port}`;
    let healthy = false;
    for (let i = 0; i < 150 && !healthy && child.exitCode === null; i++) {
      healthy = await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (!healthy) await sleep(200);
    }
    assert.ok(healthy, `cvm server did not answer /healthz: ${stderr}`);
    const setup = (await (await fetch(`${url}/api/v1/setup`)).json()) as { needsFirstAdmin: boolean };
    assert.equal(setup.needsFirstAdmin, true);
    const urls = readFileSync(log, "utf8").split("\n").filter(Boolean);
    assert.ok(urls.some((u) => u.endsWith("/dist/server/index.js")));
    const sources = urls.filter((u) => u.startsWith(`file://${root}/src/`));
    assert.deepEqual(sources, [], "cvm server ran sources");
  } finally {
    child.kill("SIGTERM");
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
});
