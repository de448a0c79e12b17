import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ensureGateBinary, gateCommand, gateMounts, gateState, releaseGate } from "./start-gate.js";

// The gate as an ordinary process: the same handlers and names it has as a CVM's PID 1.
let dir: string;
let gate: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "cvm-gate-"));
  gate = await ensureGateBinary(dir);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function hold(...command: string[]) {
  const child = spawn(gate, ["hold", ...command], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => output };
}

async function until(pid: number, state: string): Promise<void> {
  for (let i = 0; i < 500 && (await gateState(pid)) !== state; i++) await sleep(5);
  assert.equal(await gateState(pid), state);
}

test("held until released, then the real program runs in its place", async () => {
  const held = hold("/bin/sh", "-c", "echo released; sleep 0.5");
  const pid = held.child.pid as number;
  await until(pid, "held");
  await sleep(100);
  assert.equal(held.output(), "", "nothing runs before the release");
  await releaseGate(pid, "init");
  assert.equal(await held.exited, 0);
  assert.equal(held.output(), "released\n");
});

test("released as the reaper it names itself and stops on the CVM's stop signal", async () => {
  const held = hold("/sbin/init");
  const pid = held.child.pid as number;
  await releaseGate(pid, "reaper");
  assert.equal(await gateState(pid), "reaper");
  process.kill(pid, 34 + 3); // SIGRTMIN+3 (Linux), which Node has no name for
  assert.equal(await held.exited, 0);
});

test("a gate stopped before its release exits cleanly", async () => {
  const held = hold("/bin/echo", "never");
  const pid = held.child.pid as number;
  await until(pid, "held");
  process.kill(pid, "SIGTERM");
  assert.equal(await held.exited, 0);
  assert.equal(held.output(), "");
});

test("a program that exited is reported gone, and its release fails", async () => {
  await assert.rejects(releaseGate(2 ** 22 + 12345, "init", 200), /exited before it was released/);
});

test("the command names the units to mask only when there are some, and the CPUs rounded up", () => {
  assert.deepEqual(gateCommand("/sbin/init"), ["hold", "/sbin/init"]);
  assert.deepEqual(gateCommand("/sbin/init", ["a.mount", "b.service"]), [
    "hold",
    "--mask=a.mount,b.service",
    "/sbin/init",
  ]);
  assert.deepEqual(gateCommand("/sbin/init", [], 1.5), ["hold", "--cpus=2", "/sbin/init"]);
  assert.deepEqual(gateCommand("/sbin/init", ["a.mount"], 4), ["hold", "--mask=a.mount", "--cpus=4", "/sbin/init"]);
});

test("an option the gate does not know, or no program after the options, is refused with its usage", async () => {
  for (const args of [
    ["hold", "--nope=1", "/bin/true"],
    ["hold", "--cpus=2"],
  ]) {
    const child = spawn(gate, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.equal(code, 2, args.join(" "));
    assert.match(stderr, /^usage: cvm-gate hold \[--mask=UNIT,\.\.\.\] \[--cpus=N\] PATH/);
  }
});

test("held with masks, released: the program runs as it would without them (not PID 1: no masks written)", async () => {
  const child = spawn(
    gate,
    ["hold", "--mask=cvm-gate-test.mount", "--cpus=3", "/bin/sh", "-c", "echo released; sleep 0.5"],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout.on("data", (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  await until(child.pid as number, "held");
  await releaseGate(child.pid as number, "init");
  assert.equal(await exited, 0);
  assert.equal(output, "released\n");
  assert.equal(existsSync("/run/systemd/system/cvm-gate-test.mount"), false, "a mask was written on the machine");
  assert.equal(existsSync("/run/systemd/system.conf.d/cvm-cpus.conf"), false, "systemd's drop-in was written");
});

const engineSys = "80 76 0:45 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro";
const ownSys = "201 76 0:70 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs rw";
const binfmt = "300 54 0:80 / /proc/sys/fs/binfmt_misc rw,nosuid,nodev,noexec,relatime - binfmt_misc binfmt_misc rw";

test("after release: a writable sysfs super block at /sys, binfmt_misc of its own", () => {
  assert.deepEqual(gateMounts([engineSys].join("\n")), { nestable: false, binfmtMisc: false });
  assert.deepEqual(gateMounts([ownSys, binfmt].join("\n")), { nestable: true, binfmtMisc: true });
  // A sysfs over a writable one hides it: the last mount at /sys decides.
  assert.equal(gateMounts([ownSys, engineSys].join("\n")).nestable, false);
});
