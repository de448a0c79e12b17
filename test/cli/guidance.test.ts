/**
 * The CLI explains itself and never leaves a user stuck (issue 14): versions,
 * help with descriptions and examples, mistakes answered in the words typed,
 * actions that wait and show progress, a delete that will not go ahead
 * unasked, sessions told apart, and a refused ssh that names the command to
 * run. The real bin/cvm against a real server; its provider is the FAKE one,
 * so builds take the time and fail the way each test scripts.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { EnvironmentState } from "../../src/core/environment.js";
import { cvmVersion } from "../../src/core/version.js";
import { createFakeProvider } from "../../src/providers/fake/index.js";
import { type CliResult, runCvm } from "../harness/cli.js";
import { password, type SignedIn, startTestServer, type TestServer } from "../harness/server.js";

const fake = createFakeProvider({ script: { stepMs: 100 } });
let server: TestServer;
let admin: SignedIn;
let configDir: string;

function cvm(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCvm(args, { env: { ...process.env, CVM_CONFIG_DIR: configDir, ...env } });
}

async function ok(args: string[]): Promise<string> {
  const result = await cvm(args);
  assert.equal(result.code, 0, `cvm ${args.join(" ")} failed: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

async function refused(args: string[]): Promise<string> {
  const result = await cvm(args);
  assert.notEqual(result.code, 0, `cvm ${args.join(" ")} should fail: ${result.stdout}`);
  return result.stderr;
}

async function waitForState(name: string, state: EnvironmentState): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await admin.environment(name)).state !== state) {
    if (Date.now() > deadline) assert.fail(`${name} did not become ${state}`);
    await sleep(100);
  }
}

before(async () => {
  configDir = mkdtempSync(join(tmpdir(), "cvm-cli-guidance-"));
  server = await startTestServer({ provider: fake });
  admin = await server.firstAdmin();
  await ok(["login", server.url, "--email", admin.user.email, "--password", password]);
});

after(async () => {
  await server?.close();
  rmSync(configDir, { recursive: true, force: true });
});

test("cvm --version and cvm version show the CLI's version and the server's", async () => {
  const alone = await runCvm(["--version"], { env: { ...process.env, CVM_CONFIG_DIR: join(configDir, "none") } });
  assert.equal(alone.code, 0, alone.stderr);
  assert.match(alone.stdout, new RegExp(`^Client: cvm ${cvmVersion.replaceAll(".", "\\.")} `, "m"));
  assert.match(alone.stdout, /^Server: none configured \(log in with: cvm login URL\)$/m);

  const both = JSON.parse(await ok(["version", "--json"]));
  assert.equal(both.client.version, cvmVersion);
  assert.deepEqual(both.server, { url: server.url, version: cvmVersion });
});

test("env and tokens: every subcommand has a description, and the help has examples", async () => {
  const described = (help: string, names: string[]) => {
    for (const name of names) {
      assert.match(help, new RegExp(`^  ${name}\\b.*\\s{2}\\w+ \\w+`, "m"), `${name} has no description in:\n${help}`);
    }
    assert.match(help, /^Examples:\n {2}cvm /m, `no examples in:\n${help}`);
  };
  described(await ok(["env", "--help"]), ["create", "list", "show", "start", "stop", "rebuild", "delete", "logs"]);
  described(await ok(["tokens", "--help"]), ["list", "create", "revoke"]);
  assert.match(await ok(["env", "stop", "--help"]), /^Examples:\n {2}cvm env stop dev$/m);
});

test("a missing argument is named without the whole help; a mistyped command gets its suggestion", async () => {
  const missing = await refused(["env", "start"]);
  assert.match(missing, /^cvm env start: missing <name>, the environment: its name, or its id$/m);
  assert.match(missing, /^Usage: cvm env start \[options\] <name>$/m);
  assert.doesNotMatch(missing, /Options:/, "the whole help is not dumped");

  const typo = await refused(["env", "lsit"]);
  assert.match(typo, /^cvm env: "lsit" is not a command\. Did you mean list\?$/m);
  assert.doesNotMatch(typo, /too many arguments/);
});

test("flag errors name the flag the user typed, never the API's field", async () => {
  const notNumber = await refused(["env", "create", "box", "--image", "debian:12", "--memory", "abc"]);
  assert.match(notNumber, /^cvm: --memory: "abc" is not a number of GiB$/m);
  assert.doesNotMatch(notNumber, /memoryGiB/);

  const tooMany = await refused(["env", "create", "box", "--image", "debian:12", "--cpu", "1000", "--disk", "0"]);
  assert.match(tooMany, /^ {2}--cpu: must be at most \d+ CPUs/m);
  assert.match(tooMany, /^ {2}--disk: must be at least/m);
  assert.doesNotMatch(tooMany, /diskGiB/);

  const days = await refused(["tokens", "create", "ci", "--ttl-days", "soon"]);
  assert.match(days, /^cvm: --ttl-days: "soon" is not a number of days$/m);

  // The Pod's exec (what the server runs through the Kubernetes API): a variable without a value is refused.
  const bare = await refused(["supervisor", "exec", "--env", "HOME", "--", "true"]);
  assert.match(bare, /^cvm: --env: "HOME" is not NAME=VALUE$/m);
  assert.deepEqual((await admin.listEnvironments()).items, [], "nothing was created");
});

test("start, stop and rebuild wait for the outcome and show progress; --detach returns at once", async () => {
  await admin.createEnvironment({ name: "box", image: "debian:12" });
  await waitForState("box", "running");

  const stopped = await ok(["env", "stop", "box"]);
  assert.match(stopped, /^box is stopped \(\d+\.\d s\)$/m);
  assert.equal((await admin.environment("box")).state, "stopped", "stopped when the command returns");

  const started = await ok(["env", "start", "box"]);
  assert.match(started, /fake: starting debian:12/, "the build log is shown while it starts");
  assert.match(started, /^box is running \(\d+\.\d s\)$/m);
  assert.equal((await admin.environment("box")).state, "running");

  fake.script("box", { stepMs: 1500 });
  const detached = await ok(["env", "rebuild", "box", "--detach"]);
  assert.match(detached, /^box: rebuild requested, now queued$/m);
  assert.notEqual((await admin.environment("box")).state, "running", "returned before the rebuild ended");
  await waitForState("box", "running");
});

test("a start that fails again says so, exits 1 and names what to run next", async () => {
  fake.script("broken", { failAt: "starting", reason: "the image has no /sbin/init" });
  await admin.createEnvironment({ name: "broken", image: "debian:12" });
  await waitForState("broken", "failed");
  const result = await cvm(["env", "start", "broken"]);
  assert.equal(result.code, 1);
  assert.match(result.stdout, /^broken failed: the image has no \/sbin\/init \(\d+\.\d s\)$/m);
  assert.match(result.stderr, /^See why in its build log: cvm env logs broken$/m);
  assert.match(result.stderr, /^Try again: cvm env rebuild broken$/m);
});

test("cvm ssh to a failed environment names the command to run; to a stopped one, starts it and says so", async () => {
  const failed = await refused(["ssh", "broken", "--", "true"]);
  assert.match(failed, /^cvm: broken failed: the image has no \/sbin\/init$/m);
  assert.match(failed, /cvm env rebuild broken/);

  await admin.stopEnvironment("box");
  await waitForState("box", "stopped");
  // The fake provider's command echoes its command line and ends with its input.
  const started = await runCvm(["ssh", "box", "--", "echo", "in"], {
    env: { ...process.env, CVM_CONFIG_DIR: configDir },
    stdin: "",
  });
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stderr, /^cvm: box is stopped: starting it$/m);
  assert.match(started.stdout, /^echo in$/m);
  assert.equal((await admin.environment("box")).state, "running");
});

test("delete without a terminal to ask on requires --yes, and deletes nothing without it", async () => {
  const stderr = await refused(["env", "delete", "box"]);
  assert.match(stderr, /no terminal to confirm on; to delete box, pass --yes/);
  assert.equal((await admin.environment("box")).state, "running", "still there");
});

test("tokens list tells a CLI login, a browser's session and an API token apart, with where from and when used", async () => {
  const chrome =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
  const browserLogin = await fetch(`${server.url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json", "user-agent": chrome },
    body: JSON.stringify({ email: admin.user.email, password }),
  });
  assert.equal(browserLogin.status, 200);
  const created = await admin.createToken({ name: "ci" });
  const old = await admin.createToken({ name: "old" });
  await admin.revokeToken(old.token.id);

  const listed = await ok(["tokens", "list"]);
  const lines = listed.split("\n");
  assert.match(lines[0], /^ID +WHAT +FROM +CREATED +LAST USED +EXPIRES$/);
  const row = (pattern: RegExp) =>
    lines.find((line) => pattern.test(line)) ?? assert.fail(`no ${pattern} in\n${listed}`);
  assert.match(row(/CLI login/), /CLI login +127\.0\.0\.1 +\d+[sm] ago +\d+[sm] ago/);
  assert.match(row(/browser: Chrome on Linux/), /127\.0\.0\.1 .* never /);
  assert.match(row(/API token "ci"/), new RegExp(`^${created.token.id} `));
  assert.doesNotMatch(listed, /API token "old"/, "revoked tokens are left out");
  assert.match(listed, /^\(1 revoked or expired not shown: cvm tokens list --all\)$/m);
});
