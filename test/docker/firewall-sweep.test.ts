/**
 * A server's first pass over the firewall removes the chains of
 * installations that can have no environment on this node any more (every
 * bridge and bridge port they name is gone), with their jumps, and leaves
 * those of a live one. Real iptables on this machine, with made-up chains.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
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
const unused = "172.31.250.2/32";

async function makePolicy(tag: string, bridge: string): Promise<void> {
  for (const chain of [`CVM-${tag}`, `CVM-${tag}-IN`, `CVM-${tag}-NODE`, `CVM-${tag}-0badf00d`]) {
    await iptables("-N", chain);
  }
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
  for (const tag of [dead, live, own]) {
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
