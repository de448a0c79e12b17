/**
 * The `cvm` CLI as a person or a script uses it: the real binary against a real
 * server on the host engine, standard environments from an image built here.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Environment } from "../../src/core/environment.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { type CliResult, compiledCvm, runCvm } from "../harness/cli.js";
import { startTestServer, type TestServer } from "../harness/server.js";

const image = process.env.CVM_TEST_IMAGE_PLAIN;

let server: TestServer;
let configDir: string;

function cvm(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCvm(args, { env: { ...process.env, CVM_CONFIG_DIR: configDir, ...env } });
}

async function ok(args: string[], env?: Record<string, string>): Promise<string> {
  const result = await cvm(args, env);
  assert.equal(result.code, 0, `cvm ${args.join(" ")} failed: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

before(async () => {
  await compiledCvm();
  configDir = mkdtempSync(join(tmpdir(), "cvm-cli-config-"));
  server = await startTestServer({ logLevel: "warn" });
});

after(async () => {
  await server?.close();
  rmSync(configDir, { recursive: true, force: true });
});

test("login on a fresh install creates the first site admin with the setup code from the log, the password kept off the command line", async () => {
  const setupCode = server.server.setupCode ?? "";
  const out = await ok(["login", server.url, "--email", "admin@example.com", "--setup-code", setupCode], {
    CVM_PASSWORD: "correct horse",
  });
  assert.match(out, /Created the site admin admin@example\.com/);
  const me = JSON.parse(await ok(["whoami", "--json"]));
  assert.equal(me.email, "admin@example.com");
  assert.equal(me.role, "site-admin");
});

test("a second login with a wrong password fails with the server's message and a non-zero exit", async () => {
  const result = await cvm(["login", server.url, "--email", "admin@example.com", "--password", "wrong password"]);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /^cvm: /);
});

test("tokens: create one for a script, use it through CVM_TOKEN, revoke it, and it is refused", async () => {
  const created = JSON.parse(await ok(["tokens", "create", "ci", "--ttl-days", "1", "--json"]));
  assert.match(created.secret, /^cvm_/);
  const viaEnv = JSON.parse(await ok(["whoami", "--json"], { CVM_URL: server.url, CVM_TOKEN: created.secret }));
  assert.equal(viaEnv.email, "admin@example.com");
  const listed = JSON.parse(await ok(["tokens", "list", "--json"]));
  assert.ok(listed.some((t: { id: string }) => t.id === created.token.id));
  await ok(["tokens", "revoke", created.token.id]);
  const refused = await cvm(["whoami"], { CVM_URL: server.url, CVM_TOKEN: created.secret });
  assert.notEqual(refused.code, 0);
});

test("users: an admin creates a member and changes its role; a bad role is refused", async () => {
  const user = JSON.parse(await ok(["users", "create", "dev@example.com", "--password", "password123", "--json"]));
  assert.equal(user.role, "member");
  await ok(["users", "set-role", "dev@example.com", "site-manager"]);
  const users = JSON.parse(await ok(["users", "list", "--json"]));
  assert.equal(users.find((u: { email: string }) => u.email === "dev@example.com").role, "site-manager");
  const bad = await cvm(["users", "set-role", "dev@example.com", "emperor"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /role must be one of/);
});

test("admin infra: CVMs are off by default; creating a CVM then is refused naming the setting", async () => {
  const settings = JSON.parse(await ok(["admin", "infra", "show", "--json"]));
  assert.equal(settings.cvmEnabled, false);
  const refused = await cvm(["env", "create", "vm", "--image", "debian", "--cvm"]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /cvmEnabled/);
});

test("admin infra: FUSE and TUN are turned off and on; a bad state is refused naming the flag", async () => {
  const off = JSON.parse(await ok(["admin", "infra", "set", "--fuse", "disabled", "--json"]));
  assert.equal(off.fuseDevice, false);
  assert.equal(off.tunDevice, true);
  assert.match(await ok(["admin", "infra", "show"]), /^FUSE:\s+disabled$/m);
  const bad = await cvm(["admin", "infra", "set", "--tun", "maybe"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--tun takes enabled or disabled/);
  assert.equal(JSON.parse(await ok(["admin", "infra", "set", "--fuse", "on", "--json"])).fuseDevice, true);
});

test("env create with a bad name, image and size prints each field's problem and creates nothing", async () => {
  const result = await cvm(["env", "create", "Bad_Name", "--image", "debian::bookworm", "--cpu", "1000"]);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /name/);
  assert.match(result.stderr, /image/);
  assert.match(result.stderr, /cpu/);
  const list = JSON.parse(await ok(["env", "list", "--json"]));
  assert.deepEqual(list, []);
});

test("a standard environment: create --follow, ssh a command with its output and exit code, stop, start, delete", {
  skip: image ? false : "CVM_TEST_IMAGE_PLAIN is not set: run through `npm test`, which builds the test images",
}, async () => {
  const created = await ok(["env", "create", "cli-box", "--image", image!, "--cpu", "1", "--memory", "1", "--follow"]);
  assert.match(created, /cli-box is running/);
  const osRelease = await ok(["ssh", "cli-box", "--", "cat", "/etc/os-release"]);
  assert.match(osRelease, /Debian GNU\/Linux/);
  const failing = await cvm(["ssh", "cli-box", "--", "sh", "-c", "echo to-stderr >&2; exit 3"]);
  assert.equal(failing.code, 3);
  assert.match(failing.stderr, /to-stderr/);
  const shown = JSON.parse(await ok(["env", "show", "cli-box", "--json"]));
  assert.equal(shown.state, "running");
  assert.equal(shown.cvm, false);
  const logs = await ok(["env", "logs", "cli-box"]);
  assert.match(logs, /running/);
  await ok(["env", "stop", "cli-box"]);
  await waitForState("cli-box", "stopped");
  await ok(["env", "start", "cli-box", "--follow"]);
  assert.equal(JSON.parse(await ok(["env", "show", "cli-box", "--json"])).state, "running");
  await ok(["env", "delete", "cli-box", "--yes"]);
  const gone = await cvm(["env", "show", "cli-box"]);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /not found/i);
});

test("env list reads every page of a long list, newest first; --limit and --name narrow it", async () => {
  const me = JSON.parse(await ok(["whoami", "--json"])) as { id: string; email: string };
  const t0 = Date.parse("2026-02-01T00:00:00.000Z");
  const ids: string[] = [];
  for (let i = 0; i < 130; i++) {
    const box = fixtures.environment({
      owner: me,
      name: `page-${i}`,
      state: "stopped",
      createdAt: new Date(t0 + i * 1000).toISOString(),
    });
    ids.push((await server.server.store.environments.create(box)).id);
  }
  try {
    const all = JSON.parse(await ok(["env", "list", "--json"])) as Environment[];
    assert.deepEqual(
      all.map((e) => e.name),
      Array.from({ length: 130 }, (_, i) => `page-${129 - i}`),
    );
    const table = await ok(["env", "list"]);
    assert.equal(table.trimEnd().split("\n").length, 131, "a header and 130 rows");
    const five = JSON.parse(await ok(["env", "list", "--json", "--limit", "5"])) as Environment[];
    assert.deepEqual(
      five.map((e) => e.name),
      ["page-129", "page-128", "page-127", "page-126", "page-125"],
    );
    const named = JSON.parse(await ok(["env", "list", "--json", "--name", "e-12"])) as Environment[];
    assert.equal(named.length, 11);
    const bad = await cvm(["env", "list", "--limit", "0"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /limit/);
  } finally {
    for (const id of ids) await server.server.store.environments.remove(id);
  }
});

async function waitForState(name: string, state: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const shown = JSON.parse(await ok(["env", "show", name, "--json"]));
    if (shown.state === state) return;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  assert.fail(`${name} did not reach ${state}`);
}
