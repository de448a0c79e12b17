/**
 * Environments end to end over real HTTP with the real docker provider and a
 * test image built here from Debian's packages: build log streaming, the
 * terminal, concurrent starts, rebuild keeping home, stop mid-build, a failed
 * build, reconcile after a vanished container, delete, and the audit trail.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { WebSocket } from "ws";
import type { LogStreamItem } from "../../src/api/contract.js";
import type { ApiError, CvmClient } from "../../src/client/index.js";
import type { Environment } from "../../src/core/environment.js";
import { openProvider, startTestServer, storeKinds, type TestServer } from "../harness/server.js";

const run = promisify(execFile);
const image = process.env.CVM_TEST_IMAGE_PLAIN;
const skip = image ? false : "CVM_TEST_IMAGE_PLAIN is not set: run through `npm test -- FILE`";

/** Follows a build's log to its end; returns the lines and the outcome. */
async function follow(client: CvmClient, ref: string, build?: string) {
  const lines: string[] = [];
  let outcome: string | undefined;
  for await (const item of client.logs(ref, { follow: true, build, signal: AbortSignal.timeout(180_000) })) {
    if ("end" in item) outcome = (item as Extract<LogStreamItem, { end: true }>).outcome;
    else lines.push(item.text);
  }
  return { lines, outcome };
}

/** Runs a command through the terminal WebSocket; answers its output and exit code. */
function exec(client: CvmClient, ref: string, command: string[], input?: string) {
  return new Promise<{ stdout: string; stderr: string; code: number }>((resolve, reject) => {
    const ws = new WebSocket(client.terminalUrl(ref, { command, tty: false }), {
      headers: { authorization: `Bearer ${client.token}` },
    });
    let stdout = "";
    let stderr = "";
    let code: number | undefined;
    ws.on("open", () => {
      if (input !== undefined) ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(input)]));
      if (input !== undefined) ws.send(JSON.stringify({ type: "eof" }));
    });
    ws.on("message", (data, isBinary) => {
      const bytes = data as Buffer;
      if (isBinary) {
        if (bytes[0] === 1) stdout += bytes.subarray(1).toString();
        if (bytes[0] === 2) stderr += bytes.subarray(1).toString();
        return;
      }
      const message = JSON.parse(bytes.toString()) as { type: string; code?: number; message?: string };
      if (message.type === "exit") code = message.code;
      if (message.type === "error") reject(new Error(message.message));
    });
    ws.on("unexpected-response", (_req, res) => reject(new Error(`terminal refused: HTTP ${res.statusCode}`)));
    ws.on("error", reject);
    ws.on("close", (closeCode) => {
      if (code === undefined) reject(new Error(`closed (${closeCode}) without an exit message`));
      else resolve({ stdout, stderr, code });
    });
  });
}

async function waitForState(client: CvmClient, ref: string, states: string[], timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  let environment: Environment;
  do {
    environment = await client.environment(ref);
    if (states.includes(environment.state)) return environment;
    await new Promise((r) => setTimeout(r, 250));
  } while (Date.now() < deadline);
  assert.fail(`${ref} stayed ${environment.state}, expected ${states.join(" or ")}`);
}

describe("environment lifecycle (sqlite, docker provider)", { skip }, () => {
  let t: TestServer;
  let admin: CvmClient;
  let member: CvmClient & { user: { id: string } };
  before(async () => {
    t = await startTestServer("sqlite");
    admin = await t.firstAdmin();
    member = await t.userWithRole(admin, "member");
  });
  after(async () => {
    for (const environment of (await admin.listEnvironments({ owner: "all" }).catch(() => ({ items: [] }))).items) {
      await admin.deleteEnvironment(environment.id).catch(() => undefined);
    }
    await t?.close();
  });

  test("create: the build log streams every state change until running", async () => {
    const created = await member.createEnvironment({ name: "dev", image: image as string, cpu: 1, memoryGiB: 1 });
    assert.equal(created.state, "queued");
    assert.equal(created.runtime, "none");
    const { lines, outcome } = await follow(member, "dev");
    assert.equal(outcome, "running", lines.join("\n"));
    assert.ok(
      lines.some((l) => /→ running/.test(l)),
      lines.join("\n"),
    );
    const environment = await member.environment("dev");
    assert.equal(environment.state, "running");
    assert.deepEqual(environment.timeline.at(-1)?.state, "running");
    assert.equal(environment.timeline[0].state, "queued");
    const builds = (await member.builds("dev")).items;
    assert.equal(builds.length, 1);
    assert.equal(builds[0].outcome, "running");
  });

  test("the terminal runs a command and returns its output and exit code", async () => {
    const result = await exec(member, "dev", ["cat", "/etc/os-release"]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /Debian/);
    const failing = await exec(member, "dev", ["sh", "-c", "echo oops >&2; exit 3"]);
    assert.equal(failing.code, 3);
    assert.match(failing.stderr, /oops/);
    const piped = await exec(member, "dev", ["cat"], "through stdin\n");
    assert.equal(piped.stdout, "through stdin\n");
  });

  test("an interactive terminal: a login shell on a TTY, resized, ending with the shell's exit code", async () => {
    const ws = new WebSocket(member.terminalUrl("dev", { cols: 100, rows: 30 }), {
      headers: { authorization: `Bearer ${member.token}` },
    });
    let output = "";
    const ended = new Promise<{ code?: number; close: number }>((resolve, reject) => {
      let code: number | undefined;
      ws.on("message", (data, isBinary) => {
        const bytes = data as Buffer;
        if (isBinary) output += bytes.subarray(1).toString();
        else {
          const message = JSON.parse(bytes.toString()) as { type: string; code?: number };
          if (message.type === "exit") code = message.code;
        }
      });
      ws.on("close", (close) => resolve({ code, close }));
      ws.on("error", reject);
    });
    await new Promise((resolve) => ws.once("open", resolve));
    ws.send(JSON.stringify({ type: "resize", cols: 120, rows: 40 }));
    const type = (text: string) => ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(text)]));
    // The resize travels its own way to the engine; ask until the TTY reports it.
    for (let i = 0; i < 25 && !/40 120/.test(output); i++) {
      type("stty size\n");
      await new Promise((r) => setTimeout(r, 200));
    }
    type("echo answer-$((6*7)); exit 5\n");
    const { code, close } = await ended;
    assert.equal(code, 5, output);
    assert.equal(close, 1000);
    assert.match(output, /answer-42/);
    assert.match(output, /40 120/, "the resize reached the TTY");
  });

  test("logs without follow end at once; after= skips lines already seen; a build id picks that build", async () => {
    const all: LogStreamItem[] = [];
    for await (const item of member.logs("dev")) all.push(item);
    const lines = all.filter((i) => !("end" in i)) as Exclude<LogStreamItem, { end: true }>[];
    assert.ok(lines.length >= 2);
    assert.deepEqual(all.at(-1), { end: true, outcome: "running" });
    assert.deepEqual(
      lines.map((l) => l.seq),
      lines.map((_, i) => i + 1),
    );
    const later: LogStreamItem[] = [];
    for await (const item of member.logs("dev", { after: lines.length - 1 })) later.push(item);
    assert.deepEqual(later[0], lines.at(-1));
    const buildId = (await member.environment("dev")).buildId as string;
    const byId: LogStreamItem[] = [];
    for await (const item of member.logs("dev", { build: buildId })) byId.push(item);
    assert.deepEqual(byId, all);
    await assert.rejects(
      (async () => {
        for await (const _ of member.logs("dev", { build: "bld_nope" })) void _;
      })(),
      (e: ApiError) => e.status === 404,
    );
  });

  test("/metrics counts environments by state and build durations by outcome", async () => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(text, /cvm_environments\{state="running"\} 1/);
    assert.match(text, /cvm_build_duration_seconds_count\{outcome="running"\} [1-9]/);
  });

  test("the dashboard's session cookie opens the terminal from its own origin, never from another", async () => {
    const url = member.terminalUrl("dev", { command: ["echo", "via-cookie"], tty: false });
    const open = (origin: string) =>
      new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(url, { headers: { cookie: `cvm_session=${member.token}`, origin } });
        let out = "";
        ws.on("message", (data, isBinary) => {
          if (isBinary) out += (data as Buffer).subarray(1).toString();
        });
        ws.on("close", () => resolve(out));
        ws.on("unexpected-response", (_req, res) => resolve(`HTTP ${res.statusCode}`));
        ws.on("error", reject);
      });
    assert.equal(await open(t.url), "via-cookie\n");
    assert.equal(await open("http://evil.example"), "HTTP 403");
  });

  test("another member cannot open the terminal (404 before any upgrade)", async () => {
    const other = await t.userWithRole(admin, "member");
    const environment = await member.environment("dev");
    await assert.rejects(exec(other, environment.id, ["true"]), /HTTP 404/);
  });

  test("two concurrent starts: one 200 and one 409, and the environment runs once", async () => {
    const stopped = await member.stopEnvironment("dev");
    assert.equal(stopped.state, "stopped");
    const attempts = await Promise.allSettled([member.startEnvironment("dev"), member.startEnvironment("dev")]);
    const ok = attempts.filter((a) => a.status === "fulfilled");
    const refused = attempts.filter((a) => a.status === "rejected") as PromiseRejectedResult[];
    assert.equal(ok.length, 1);
    assert.equal(refused.length, 1);
    assert.equal((refused[0].reason as ApiError).status, 409);
    assert.match((refused[0].reason as ApiError).body.message, /Cannot start an environment that is starting/);
    const { outcome } = await follow(member, "dev");
    assert.equal(outcome, "running");
    assert.equal((await member.environment("dev")).state, "running");
  });

  test("rebuild keeps the home volume (/home)", async () => {
    const wrote = await exec(member, "dev", ["sh", "-c", "echo kept > /home/kept.txt"]);
    assert.equal(wrote.code, 0);
    const rebuilding = await member.rebuildEnvironment("dev");
    assert.equal(rebuilding.state, "queued");
    const { outcome, lines } = await follow(member, "dev");
    assert.equal(outcome, "running", lines.join("\n"));
    const read = await exec(member, "dev", ["cat", "/home/kept.txt"]);
    assert.equal(read.stdout.trim(), "kept");
  });

  test("a terminal session ends when its environment stops", async () => {
    const ws = new WebSocket(member.terminalUrl("dev", { command: ["sleep", "120"], tty: false }), {
      headers: { authorization: `Bearer ${member.token}` },
    });
    const messages: string[] = [];
    const closed = new Promise<number>((resolve) => ws.on("close", resolve));
    ws.on("message", (data, isBinary) => {
      if (!isBinary) messages.push((data as Buffer).toString());
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    await member.stopEnvironment("dev");
    const code = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r("still open"), 30_000))]);
    assert.notEqual(code, "still open");
    assert.ok(messages.length > 0, "the client is told why");
    await member.startEnvironment("dev");
    assert.equal((await follow(member, "dev")).outcome, "running");
  });

  test("showing a running environment observes it: a container stopped behind cvm's back is reported", async () => {
    const environment = await member.environment("dev");
    const provider = await openProvider(t);
    const [workload] = (await provider.listWorkloads()).filter((w) => w.environmentId === environment.id);
    await provider.close();
    await run("docker", ["stop", "-t", "1", workload.ref]);
    const shown = await member.environment("dev");
    assert.equal(shown.state, "failed");
    assert.match(shown.stateReason ?? "", /^workload stopped/);
    await member.startEnvironment("dev");
    assert.equal((await follow(member, "dev")).outcome, "running");
  });

  test("GET /events streams the environment's changes", async () => {
    const controller = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const event of member.events(controller.signal)) {
        if (event.type === "environment" && event.environment.name === "dev") seen.push(event.environment.state);
        if (seen.includes("stopped")) break;
      }
    })().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    await member.stopEnvironment("dev");
    await Promise.race([reading, new Promise((r) => setTimeout(r, 10_000))]);
    controller.abort();
    assert.deepEqual(seen, ["stopping", "stopped"]);
  });

  test("stop in the middle of a build aborts it: stopped, and the build ends stopped", async () => {
    const created = await member.createEnvironment({ name: "brief", image: image as string });
    const stopped = await member.stopEnvironment("brief");
    assert.equal(stopped.state, "stopped");
    const builds = (await member.builds("brief")).items;
    assert.equal(builds[0].id, created.buildId);
    assert.ok(["stopped", "running"].includes(builds[0].outcome ?? ""), `outcome ${builds[0].outcome}`);
    await member.deleteEnvironment("brief");
  });

  test("delete in the middle of a build aborts it and leaves no workload", async () => {
    const created = await member.createEnvironment({ name: "fleeting", image: image as string });
    await member.deleteEnvironment("fleeting");
    await assert.rejects(member.environment(created.id), (e: ApiError) => e.status === 404);
    const provider = await openProvider(t);
    const left = (await provider.listWorkloads()).filter((w) => w.environmentId === created.id);
    await provider.close();
    assert.deepEqual(left, []);
    const [entry] = (await admin.audit({ target: `environment/${created.id}`, action: "environment.delete" })).items;
    assert.equal((entry.before as { name: string }).name, "fleeting", "the audit log keeps what was deleted");
  });

  test("a build that cannot pull fails with the reason kept, and its log kept", async () => {
    await member.createEnvironment({ name: "broken", image: "127.0.0.1:5000/cvm/no-such-image:never" });
    const { outcome, lines } = await follow(member, "broken");
    assert.equal(outcome, "failed");
    const environment = await member.environment("broken");
    assert.equal(environment.state, "failed");
    assert.ok(environment.stateReason, "a reason is kept");
    assert.ok(
      lines.some((l) => l.includes("failed")),
      lines.join("\n"),
    );
    assert.ok((await member.builds("broken")).items[0].outcome === "failed");
    await member.deleteEnvironment("broken");
  });

  test("reconcile marks an environment whose container vanished failed, with the reason", async () => {
    await member.startEnvironment("dev");
    assert.equal((await follow(member, "dev")).outcome, "running");
    const environment = await member.environment("dev");
    // The provider's own view of its workloads names the container; the engine's CLI removes it behind cvm's back.
    const provider = await openProvider(t);
    const workloads = (await provider.listWorkloads()).filter((w) => w.environmentId === environment.id);
    await provider.close();
    assert.ok(workloads.length > 0, "the environment has a labeled workload");
    await run("docker", ["rm", "-f", ...workloads.map((w) => w.ref)]);
    const report = await admin.reconcile();
    const vanished = report.vanished.find((v) => v.id === environment.id);
    assert.ok(vanished, JSON.stringify(report));
    assert.match(vanished.reason, /workload vanished/);
    const after = await member.environment("dev");
    assert.equal(after.state, "failed");
    assert.match(after.stateReason ?? "", /workload vanished/);
  });

  test("a server stopped in the middle of a build resumes it when it starts again; the build ends running", async () => {
    const created = await member.createEnvironment({ name: "cut", image: image as string });
    await t.restart();
    const { outcome, lines } = await follow(member, "cut", created.buildId);
    assert.equal(outcome, "running", lines.join("\n"));
    assert.equal((await member.environment("cut")).state, "running");
    await member.deleteEnvironment("cut");
    const provider = await openProvider(t);
    const left = (await provider.listWorkloads()).filter((w) => w.environmentId === created.id);
    await provider.close();
    assert.deepEqual(left, []);
  });

  test("delete removes the environment; the audit log keeps every action", async () => {
    await member.deleteEnvironment("dev");
    await assert.rejects(member.environment("dev"), (e: ApiError) => e.status === 404);
    assert.deepEqual((await member.listEnvironments()).items, []);
    const actions = (await admin.audit({ actorId: member.user.id, limit: 200 })).items
      .filter((e) => e.action.startsWith("environment."))
      .map((e) => e.action);
    for (const action of ["create", "start", "stop", "rebuild", "delete"]) {
      assert.ok(actions.includes(`environment.${action}`), `${action} in ${actions.join(", ")}`);
    }
  });
});

for (const kind of storeKinds) {
  describe(`concurrent actions (${kind}, docker provider)`, { skip }, () => {
    let t: TestServer;
    let member: CvmClient;
    before(async () => {
      t = await startTestServer(kind);
      const admin = await t.firstAdmin();
      member = await t.userWithRole(admin, "member");
    });
    after(async () => {
      await member?.deleteEnvironment("race").catch(() => undefined);
      await t?.close();
    });

    test("many concurrent starts of a stopped environment: exactly one succeeds", async () => {
      await member.createEnvironment({ name: "race", image: image as string });
      assert.equal((await follow(member, "race")).outcome, "running");
      await member.stopEnvironment("race");
      const attempts = await Promise.allSettled(Array.from({ length: 5 }, () => member.startEnvironment("race")));
      assert.equal(attempts.filter((a) => a.status === "fulfilled").length, 1);
      for (const a of attempts.filter((a) => a.status === "rejected") as PromiseRejectedResult[]) {
        assert.equal((a.reason as ApiError).status, 409);
      }
      await waitForState(member, "race", ["running"]);
      const builds = (await member.builds("race")).items;
      assert.equal(builds.length, 2, "the create's build and one start's: refused starts leave no build");
    });
  });
}
