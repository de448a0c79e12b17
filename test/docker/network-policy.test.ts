/**
 * The network policy with real containers on the docker provider: two
 * members' standard environments and a CVM, each with a listener; "the
 * internet" is a network namespace behind a veth with an address outside
 * every private range, and "the node's services" a listener on the node
 * itself. By default an environment reaches its owner's other environments
 * (standard or CVM) and the internet, and not another member's, not the node,
 * not the host engine's containers; an admin can open every environment of
 * the installation, and an address of the node.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomInt } from "node:crypto";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import type { Environment } from "../../src/core/environment.js";
import { type SignedIn, startTestServer, type TestServer } from "../harness/server.js";

const run = promisify(execFile);
const plainImage = process.env.CVM_TEST_IMAGE_PLAIN;
const cvmImage = process.env.CVM_TEST_IMAGE_SYSTEMD;
const skip = (!plainImage || !cvmImage) && "run through `npm test`, which builds the test images";

const port = 8080;
/** Answers "hi" to every connection, forever. */
const listener = `perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalPort=>${port},Listen=>16,ReuseAddr=>1) or die; while($c=$s->accept){print $c "hi\\n"; close $c}'`;

interface Placed {
  environment: Environment;
  /** docker's -H for the engine it runs in. */
  engine: string[];
  container: string;
  address: string;
  gateway: string;
}

async function docker(engine: string[], ...args: string[]): Promise<string> {
  return (await run("docker", [...engine, ...args])).stdout.trim();
}

/** Whether `from` can open a TCP connection to address:port and read the listener's greeting, within 3 s. */
async function reaches(from: Placed, address: string, to = port): Promise<boolean> {
  const probe = `exec 3<>/dev/tcp/${address}/${to} && head -1 <&3`;
  const result = await run("docker", [
    ...from.engine,
    "exec",
    from.container,
    "timeout",
    "3",
    "bash",
    "-c",
    probe,
  ]).then(
    (r) => r.stdout.trim(),
    () => "",
  );
  return result === "hi";
}

/**
 * Whether `from` comes to reach the address within 30 s: a settings change is
 * applied to both engines' rules after its answer, so an opening is waited
 * for (a closing is asserted at once, as the rules that stay shut are). Each
 * try is a `docker exec` with a 3 s timeout, so under a full suite's load
 * 10 s allowed only two or three tries, and one CI run missed the opening.
 */
async function comesToReach(from: Placed, address: string, to = port): Promise<boolean> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    if (await reaches(from, address, to)) return true;
  }
  return false;
}

/** The filter table's rules with their packet counters, by rule text. */
async function counters(): Promise<Map<string, number>> {
  const { stdout } = await run("iptables-save", ["-c", "-t", "filter"]);
  const rules = new Map<string, number>();
  for (const line of stdout.split("\n")) {
    const match = /^\[(\d+):\d+\] (-A .*)$/.exec(line);
    if (match) rules.set(match[2], (rules.get(match[2]) ?? 0) + Number(match[1]));
  }
  return rules;
}

/**
 * Why a probe fails, for the assertion's message: the rules that stopped or
 * sent on its packets, read as the rules whose counters grew while it ran
 * (other traffic on the machine adds some noise). A full suite's run failed
 * where a run of this file alone passes, and this says which chain did it.
 */
async function whoStops(from: Placed, address: string, to = port): Promise<string> {
  const before = await counters();
  await reaches(from, address, to);
  const grown = [...(await counters())].filter(
    ([rule, packets]) => packets > (before.get(rule) ?? 0) && / -[jg] (DROP|REJECT|CVM-)/.test(rule),
  );
  return grown.map(([rule]) => rule).join("\n") || "(no DROP, REJECT or cvm chain counted a packet)";
}

describe("network policy (docker provider)", { skip }, () => {
  let t: TestServer;
  let admin: SignedIn;
  let ada: SignedIn;
  let bob: SignedIn;
  const placed: Record<string, Placed> = {};
  const internet = { ns: `cvm-inet-${randomInt(1e6)}`, link: `cvmi${randomInt(1e5)}`, net: randomInt(60) * 4 };
  const internetAddress = `198.51.100.${internet.net + 2}`;
  let nodeListener: Server;
  let nodePort = 0;

  async function place(client: SignedIn, name: string, cvm = false): Promise<Placed> {
    const created = await client.createEnvironment({
      name,
      image: (cvm ? cvmImage : plainImage) as string,
      cvm,
      cpu: 0.5,
      memoryGiB: cvm ? 1 : 0.25,
      diskGiB: 1,
    });
    for await (const item of client.logs(created.id, { follow: true, signal: AbortSignal.timeout(300_000) })) {
      if ("end" in item) assert.equal(item.outcome, "running");
    }
    const engine = cvm ? ["-H", `unix://${join(t.dataDir, "engine", "docker.sock")}`] : [];
    const container = await docker(engine, "ps", "-q", "--filter", `label=dev.cvm.environment=${created.id}`);
    const [address, gateway] = (
      await docker(
        engine,
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}",
        container,
      )
    ).split(" ");
    await docker(engine, "exec", "-d", container, "sh", "-c", listener);
    const entry = { environment: created, engine, container, address, gateway };
    placed[name] = entry;
    return entry;
  }

  before(async () => {
    t = await startTestServer({ cvms: true });
    admin = await t.firstAdmin();
    await admin.updateInfrastructure({ cvmEnabled: true, force: true });
    ada = await t.userWithRole(admin, "member");
    bob = await t.userWithRole(admin, "member");
    // The internet: a namespace behind a veth, at an address in no private range.
    const hostSide = `198.51.100.${internet.net + 1}/30`;
    await run("ip", ["netns", "add", internet.ns]);
    await run("ip", ["link", "add", internet.link, "type", "veth", "peer", "name", "eth0", "netns", internet.ns]);
    await run("ip", ["addr", "add", hostSide, "dev", internet.link]);
    await run("ip", ["link", "set", internet.link, "up"]);
    await run("ip", ["-n", internet.ns, "addr", "add", `${internetAddress}/30`, "dev", "eth0"]);
    await run("ip", ["-n", internet.ns, "link", "set", "eth0", "up"]);
    await run("ip", ["netns", "exec", internet.ns, "sh", "-c", `${listener} >/dev/null 2>&1 &`]);
    // The node's services: anything listening on the node.
    nodeListener = createServer((socket) => socket.end("hi\n"));
    await new Promise<void>((resolve) => nodeListener.listen(0, "0.0.0.0", resolve));
    nodePort = (nodeListener.address() as { port: number }).port;
    await Promise.all([place(ada, "ada-1"), place(ada, "ada-2"), place(bob, "bob-1"), place(ada, "ada-cvm", true)]);
  });

  after(async () => {
    nodeListener?.close();
    await run("ip", ["netns", "pids", internet.ns])
      .then(({ stdout }) => stdout.split("\n").filter(Boolean))
      .then((pids) => (pids.length ? run("kill", pids) : undefined))
      .catch(() => undefined);
    await run("ip", ["link", "del", internet.link]).catch(() => undefined);
    await run("ip", ["netns", "del", internet.ns]).catch(() => undefined);
    for (const { environment } of Object.values(placed)) {
      await admin.deleteEnvironment(environment.id).catch(() => undefined);
    }
    await t?.close();
  });

  test("by default: the owner's other environments (standard and CVM) and the internet; not another's, not the node", async () => {
    const [a1, a2, b1, cvm] = ["ada-1", "ada-2", "bob-1", "ada-cvm"].map((n) => placed[n]);
    assert.equal(await reaches(a1, a2.address), true, "ada's environment reaches her other one");
    assert.equal(await reaches(a1, cvm.address), true, "and her CVM");
    assert.equal(await reaches(cvm, a1.address), true, "her CVM reaches her standard environment");
    assert.equal(await reaches(a1, b1.address), false, "not bob's");
    assert.equal(await reaches(b1, a1.address), false, "bob's does not reach hers");
    assert.equal(await reaches(cvm, b1.address), false, "nor does her CVM");
    assert.equal(await reaches(b1, cvm.address), false, "bob's does not reach her CVM");
    for (const from of [a1, b1, cvm]) {
      assert.equal(await reaches(from, from.gateway, nodePort), false, `${from.environment.name}: not the node`);
      assert.equal(await reaches(from, internetAddress), true, `${from.environment.name}: the internet`);
    }
  });

  test("not the host engine's own containers", async () => {
    const other = await docker([], "run", "-d", "--rm", plainImage as string, "sh", "-c", listener);
    try {
      const address = await docker([], "inspect", "-f", "{{.NetworkSettings.IPAddress}}", other);
      assert.equal(await reaches(placed["ada-1"], address), false, "a standard environment");
      assert.equal(await reaches(placed["ada-cvm"], address), false, "a CVM");
    } finally {
      await docker([], "rm", "-f", other).catch(() => undefined);
    }
  });

  test("an admin opens every environment of the installation, and an address of the node", async () => {
    const [a1, b1, cvm] = ["ada-1", "bob-1", "ada-cvm"].map((n) => placed[n]);
    await admin.updateInfrastructure({ network: { reach: "installation", allowedNetworks: [`${a1.gateway}/32`] } });
    try {
      assert.equal(await comesToReach(a1, b1.address), true, "ada's reaches bob's");
      assert.equal(await comesToReach(b1, cvm.address), true, "bob's reaches ada's CVM");
      const opened = await comesToReach(a1, a1.gateway, nodePort);
      const why = opened ? "" : await whoStops(a1, a1.gateway, nodePort);
      assert.equal(opened, true, `the node's address that was opened; rules that counted the probe:\n${why}`);
      assert.equal(await reaches(cvm, cvm.gateway, nodePort), false, "not the node's other addresses");
    } finally {
      await admin.updateInfrastructure({ network: { reach: "owner", allowedNetworks: [] } });
    }
    assert.equal(await reaches(a1, b1.address), false, "closed again");
  });
});
