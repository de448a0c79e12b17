/**
 * `cvm doctor` as a user runs it, on this machine: the real bin/cvm, the real
 * kernel, files and engine. Debian here: the OS warns for sysbox and passes
 * for the built-in runtime; the kernel passes for both.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { before, test } from "node:test";
import { promisify } from "node:util";
import type { ChecksResponse } from "../../src/api/contract.js";
import { formatChecks } from "../../src/cli/doctor.js";
import { compiledCvm, cvmBin as cvm } from "../harness/cli.js";

const run = promisify(execFile);
before(() => compiledCvm());
const dockerHost = `unix://${process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock"}`;
const isUbuntu = /^ID=ubuntu$/m.test(readFileSync("/etc/os-release", "utf8"));

async function doctor(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const result = await run(cvm, ["doctor", "--docker-host", dockerHost, ...args], { timeout: 60_000 }).catch(
    (error) => error,
  );
  return { code: typeof result.code === "number" ? result.code : 0, stdout: result.stdout, stderr: result.stderr };
}

const exitFor = { pass: 0, warn: 1, fail: 2, "not-applicable": 0 } as const;

test("cvm doctor --json --runtime sysbox: kernel passes, the OS warns (not Ubuntu), exit 2 for the missing sysbox", async () => {
  const { code, stdout, stderr } = await doctor("--json", "--runtime", "sysbox");
  const response = JSON.parse(stdout) as ChecksResponse;
  const check = (id: string) => response.checks.find((c) => c.id === id);
  assert.equal(check("kernel")?.status, "pass", stderr);
  assert.equal(check("os")?.status, isUbuntu ? "pass" : "warn");
  if (!isUbuntu) assert.match(check("os")!.evidence, /sysbox is supported on Ubuntu nodes/);
  assert.equal(check("isolation-runtime")?.status, "fail");
  assert.equal(response.worst, "fail");
  assert.equal(code, 2);
});

test("cvm doctor --json --runtime userns: the OS is fine for the built-in runtime; exit code follows the worst", async () => {
  const { code, stdout } = await doctor("--json", "--runtime", "userns");
  const response = JSON.parse(stdout) as ChecksResponse;
  const check = (id: string) => response.checks.find((c) => c.id === id);
  assert.equal(check("kernel")?.status, "pass");
  assert.equal(check("os")?.status, "pass");
  for (const id of ["user-namespaces", "cgroup-version", "cgroup-delegation", "overlay-in-userns", "engine"]) {
    assert.equal(check(id)?.status, "pass", `${id}: ${check(id)?.evidence}`);
  }
  assert.equal(code, exitFor[response.worst]);
});

test("cvm doctor prints a table people can read, with evidence and remedies", async () => {
  const { code, stdout } = await doctor("--runtime", "sysbox");
  assert.equal(code, 2);
  assert.match(stdout, /^STATUS\s+ID\s+TITLE\s+EVIDENCE$/m);
  assert.match(stdout, /^PASS\s+kernel\s+Kernel version\s+kernel release \S+/m);
  assert.match(stdout, /^FAIL\s+isolation-runtime\s+.*sysbox-runc is not registered$/m);
  assert.match(stdout, /^\s+remedy: Install sysbox/m);
  assert.match(stdout, /not ready for CVMs$/m);
});

test("cvm doctor refuses an unknown runtime", async () => {
  const { code, stderr } = await doctor("--runtime", "kata");
  assert.notEqual(code, 0);
  assert.match(stderr, /--runtime takes one of auto, sysbox, userns/);
});

test("the table continues multi-line evidence and the remedy under the evidence column", () => {
  const text = formatChecks([
    { id: "a", title: "A", status: "pass", evidence: "one" },
    { id: "bb", title: "B", status: "warn", evidence: "first\nsecond", remedy: "do this" },
  ]);
  const lines = text.split("\n");
  const column = lines[0].indexOf("EVIDENCE");
  assert.equal(lines[2].indexOf("first"), column);
  assert.equal(lines[3].indexOf("second"), column);
  assert.equal(lines[4].indexOf("remedy: do this"), column);
  assert.match(text, /1 pass, 1 warn, 0 fail: CVMs can run; see the warnings/);
});
