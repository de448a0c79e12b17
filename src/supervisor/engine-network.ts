/**
 * The network of cvm's own engine: a bridge of its own (a second dockerd must
 * not fight the host's over docker0) and the few iptables rules it needs.
 * dockerd runs with --iptables=false because, when it manages iptables, it
 * removes and recreates the DOCKER chains on start, which would wipe the host
 * engine's rules. The rules here are keyed to our bridge and never touch
 * Docker's chains.
 */

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface EngineNetwork {
  bridge: string;
  /** The bridge's own address with prefix, such as 10.213.7.1/24. */
  address: string;
  subnet: string;
}

/** A stable bridge name per data dir (at most 15 characters, the kernel's IFNAMSIZ). */
export function bridgeName(dataDir: string): string {
  return `cvm-${createHash("sha256").update(dataDir).digest("hex").slice(0, 8)}`;
}

/**
 * The /24 subnets to try for a data dir, starting at one derived from its
 * name so that two cvm engines on one machine start apart. 10.213.0.0/16 is
 * far from Docker's defaults (172.17.0.0/16 and its address pools).
 */
export function candidateSubnets(dataDir: string): string[] {
  const start = createHash("sha256").update(dataDir).digest()[0];
  return Array.from({ length: 256 }, (_, i) => `10.213.${(start + i) % 256}.0/24`);
}

function network(subnet: string): string {
  return subnet.split("/")[0];
}

/** The subnets already routed on this machine (any interface), as "a.b.c" /24 prefixes. */
function routedPrefixes(routes: string): Set<string> {
  const prefixes = new Set<string>();
  for (const line of routes.split("\n")) {
    const match = /^(\d+\.\d+\.\d+)\.\d+\/(\d+)/.exec(line.trim());
    if (match) prefixes.add(match[1]);
  }
  return prefixes;
}

export function pickSubnet(dataDir: string, routes: string): string {
  const taken = routedPrefixes(routes);
  const free = candidateSubnets(dataDir).find((s) => !taken.has(network(s).split(".").slice(0, 3).join(".")));
  if (!free) throw new Error("no free /24 in 10.213.0.0/16 for cvm's engine bridge");
  return free;
}

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run("ip", args);
  return stdout;
}

async function existingAddress(bridge: string): Promise<string | undefined> {
  const out = await ip("-4", "-o", "addr", "show", "dev", bridge).catch(() => undefined);
  if (out === undefined) return undefined;
  return /inet (\d+\.\d+\.\d+\.\d+\/\d+)/.exec(out)?.[1];
}

/** Creates the bridge (or finds it, after a server restart) and brings it up. */
export async function ensureBridge(dataDir: string): Promise<EngineNetwork> {
  const bridge = bridgeName(dataDir);
  let address = await existingAddress(bridge);
  if (!address) {
    await ip("link", "add", bridge, "type", "bridge").catch(async (error) => {
      if (!(await ip("link", "show", bridge).catch(() => undefined))) throw error;
    });
    const subnet = pickSubnet(dataDir, await ip("-4", "route", "show"));
    address = `${network(subnet).replace(/\.0$/, ".1")}/24`;
    await ip("addr", "add", address, "dev", bridge);
  }
  await ip("link", "set", bridge, "up");
  const [host, prefix] = address.split("/");
  const subnet = `${host.split(".").slice(0, 3).join(".")}.0/${prefix}`;
  await ensureRules({ bridge, address, subnet });
  return { bridge, address, subnet };
}

/**
 * What a CVM may do on the network, as iptables rules: reach the outside
 * through NAT and get answers back; not open connections to the node itself
 * (its API server, its engine's TCP ports, anything listening) nor to another
 * CVM on the same bridge.
 */
export function networkRules({ bridge, subnet }: EngineNetwork): { table: string; chain: string; rule: string[] }[] {
  return [
    { table: "nat", chain: "POSTROUTING", rule: ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"] },
    { table: "filter", chain: "FORWARD", rule: ["-i", bridge, "-o", bridge, "-j", "DROP"] },
    { table: "filter", chain: "FORWARD", rule: ["-i", bridge, "!", "-o", bridge, "-j", "ACCEPT"] },
    {
      table: "filter",
      chain: "FORWARD",
      rule: ["-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
    },
    {
      table: "filter",
      chain: "INPUT",
      rule: ["-i", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
    },
    { table: "filter", chain: "INPUT", rule: ["-i", bridge, "-j", "DROP"] },
  ];
}

async function ensureRules(net: EngineNetwork): Promise<void> {
  // Inserted in reverse at the top, so they end up in the order listed and ahead of Docker's own chains.
  for (const { table, chain, rule } of networkRules(net).reverse()) {
    const present = await run("iptables", ["-w", "-t", table, "-C", chain, ...rule]).then(
      () => true,
      () => false,
    );
    if (!present) await run("iptables", ["-w", "-t", table, "-I", chain, "1", ...rule]);
  }
}

/** Removes the rules and the bridge (once the engine using them has stopped). */
export async function removeNetwork(net: EngineNetwork): Promise<void> {
  for (const { table, chain, rule } of networkRules(net)) {
    await run("iptables", ["-w", "-t", table, "-D", chain, ...rule]).catch(() => undefined);
  }
  await ip("link", "del", net.bridge).catch(() => undefined);
}
