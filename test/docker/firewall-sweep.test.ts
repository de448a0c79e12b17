/**
 * A server's first pass over the firewall removes the chains of
 * installations that can have no environment on this node any more (every
 * bridge and bridge port they name is gone, or the data dir their server
 * marked them with), with their jumps, and leaves those of a live one. Real iptables on this machine, with made-up chains.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import pino from "pino";
import { removeDeadPolicies } from "../../src/providers/docker/environment-firewall.js";

const run = promisify(execFile);
const iptables = (...args: string[]) => run("iptables", ["-w", ...args]);
const table = async () => (await iptables("-S")).stdout;

const dead = randomBytes(4).toString("hex");
const live = randomBytes(4).toString("hex");
const own = randomBytes(4).toString("hex");
// Two more on a bridge that is there (as servers without an installation id share one): their data dirs decide.
const gone = randomBytes(4).toString("hex");
const kept = randomBytes(4).toString("hex");
const unused = "172.31.250.2/32";

async function makePolicy(tag: string, bridge: string, dataDir?: string): Promise<void> {
  for (const chain of [`CVM-${tag}`, `CVM-${tag}-IN`, `CVM-${tag}-NODE`, `CVM-${tag}-0badf00d`]) {
    await iptables("-N", chain);
  }
  if (dataDir) await iptables("-A", `CVM-${tag}`, "-m", "comment", "--comment", `cvm-data-dir:${dataDir}`);
  await iptables("-A", `CVM-${tag}`, "-s", unused, "-g", `CVM-${tag}-0badf00d`);
  // Only packets from an address nothing here uses: the suite's other tests run beside this one, on `lo` too.
  await iptables("-A", `CVM-${tag}`, "-s", unused, "-i", bridge, "-j", "DROP");
  await iptables("-A", `CVM-${tag}-IN`, "-s", unused, "-g", `CVM-${tag}-NODE`);
  await iptables("-A", `CVM-${tag}-IN`, "-s", unused, "-i", bridge, "-j", "DROP");
  await iptables("-A", `CVM-${tag}-NODE`, "-j", "DROP");
  await iptables("-I", "FORWARD", "1", "-m", "comment", "--comment", "cvm-policy", "-j", `CVM-${tag}`);
  await iptables("-I", "INPUT", "1", "-m", "comment", "--comment", "cvm-policy", "-j", `CVM-${tag}-IN`);
}

after(async () => {
  for (const tag of [dead, live, own, gone, kept]) {
    await iptables("-D", "FORWARD", "-m", "comment", "--comment", "cvm-policy", "-j", `CVM-${tag}`).catch(() => {});
    await iptables("-D", "INPUT", "-m", "comment", "--comment", "cvm-policy", "-j", `CVM-${tag}-IN`).catch(() => {});
    for (const suffix of ["", "-IN", "-NODE", "-0badf00d"]) await iptables("-F", `CVM-${tag}${suffix}`).catch(() => {});
    for (const suffix of ["", "-IN", "-NODE", "-0badf00d"]) await iptables("-X", `CVM-${tag}${suffix}`).catch(() => {});
  }
});

test("the chains of an installation whose bridges are all gone go, with their jumps; a live one's and our own stay", async () => {
  await makePolicy(dead, `br-${dead}gone`);
  // `lo` stands for a bridge that exists: every machine has it.
  await makePolicy(live, "lo");
  await makePolicy(own, `br-${own}gone`);
  await removeDeadPolicies(own, pino({ level: "silent" }));
  const after = await table();
  assert.ok(!after.includes(`CVM-${dead}`), `nothing of the dead installation is left:\n${after}`);
  for (const suffix of ["", "-IN", "-NODE", "-0badf00d"]) {
    assert.ok(after.includes(`-N CVM-${live}${suffix}\n`), `the live installation keeps CVM-${live}${suffix}`);
    assert.ok(
      after.includes(`-N CVM-${own}${suffix}\n`),
      `the sweeping installation keeps its own CVM-${own}${suffix}`,
    );
  }
  assert.ok(after.includes(`-A FORWARD -m comment --comment cvm-policy -j CVM-${live}\n`));
  assert.ok(after.includes(`-A INPUT -m comment --comment cvm-policy -j CVM-${live}-IN\n`));
});

test("on a bridge that is still there, the chains of a server whose data dir is gone go; one whose data dir is there stays", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-firewall-sweep-"));
  try {
    await makePolicy(gone, "lo", `${dataDir}/removed`);
    await makePolicy(kept, "lo", dataDir);
    await removeDeadPolicies(own, pino({ level: "silent" }));
    const after = await table();
    assert.ok(!after.includes(`CVM-${gone}`), `nothing of the server whose data dir went is left:\n${after}`);
    for (const suffix of ["", "-IN", "-NODE", "-0badf00d"]) {
      assert.ok(after.includes(`-N CVM-${kept}${suffix}\n`), `the server with its data dir keeps CVM-${kept}${suffix}`);
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
