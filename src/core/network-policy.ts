/**
 * Which connections an environment may open, as iptables rules in chains
 * cvm owns (one set per installation). Plain data in, rule text out, so the
 * policy is tested without a kernel; the docker provider applies it
 * (src/providers/docker/environment-firewall.ts).
 *
 * The policy: an environment reaches the internet, and its own owner's
 * environments (or, when an admin says so, every environment of the
 * installation); not the node itself (its API server, its engines' ports,
 * anything listening), not other users' environments, not the host engine's
 * containers, not the private networks around the node (cloud metadata, the
 * LAN), except the addresses an admin allows and the node's DNS servers on
 * port 53. Answers to allowed connections always come back.
 *
 * A packet is told to be an environment's by the bridge port it came in on
 * (`physdev`), which nothing inside the environment can change; its source
 * address is the fallback where the port is not known.
 */

export const networkReaches = ["owner", "installation"] as const;
export type NetworkReach = (typeof networkReaches)[number];

/** An IPv4 network: its address as a number and its prefix length. */
export interface Cidr {
  address: number;
  prefix: number;
}

function parseAddress(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
  return parts.reduce((sum, p) => sum * 256 + Number(p), 0);
}

/** `a.b.c.d` or `a.b.c.d/n`; undefined when it is neither. */
export function parseCidr(text: string): Cidr | undefined {
  const [host, prefixText, ...rest] = text.trim().split("/");
  if (rest.length > 0) return undefined;
  const address = parseAddress(host);
  const prefix = prefixText === undefined ? 32 : /^\d{1,2}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (address === undefined || !(prefix >= 0 && prefix <= 32)) return undefined;
  return { address, prefix };
}

export function formatCidr({ address, prefix }: Cidr): string {
  const octets = [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256);
  return `${octets.join(".")}/${prefix}`;
}

/** Why an allowed network is not one, or undefined when it is. */
export function cidrProblem(text: unknown): string | undefined {
  if (typeof text !== "string" || !parseCidr(text))
    return "must be an IPv4 address or network, such as 10.1.2.3 or 10.1.0.0/16";
  return undefined;
}

/**
 * What is not the internet: private, shared (CGNAT), link-local (cloud
 * metadata), loopback, multicast and reserved ranges. Closed to environments
 * unless an admin allows a part of them.
 */
export const closedNetworks: readonly string[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

/** One running environment as the firewall sees it. */
export interface FirewalledEnvironment {
  environmentId: string;
  ownerId: string;
  /** Its address on its bridge. */
  address: string;
  /** The bridge port (host side of its veth) its packets come in on, where known. */
  port?: string;
}

export interface NetworkPolicyInput {
  /** The installation's tag (8 hex digits): chain names carry it, so two installations on a node keep apart. */
  tag: string;
  environments: readonly FirewalledEnvironment[];
  reach: NetworkReach;
  /** Addresses or networks an admin opened (parsed from the settings; bad ones are refused there). */
  allowed: readonly string[];
  /** The node's DNS servers, which CVMs are given as theirs (port 53 only). */
  nameservers: readonly string[];
  /**
   * The bridges the installation's environments sit on: a new connection
   * from one that no environment's rule took (a container not yet known, or
   * gone) is dropped, so nothing gets past the policy by being early.
   */
  bridges: readonly string[];
  /**
   * The data dir of the server that owns the chains, written in a comment of
   * the first one, so a later sweep can tell chains whose server's data dir is
   * gone (on a bridge others share, the bridge alone cannot tell).
   */
  dataDir?: string;
}

/** The comment that names the owning server's data dir (a path of plain characters only; others are not marked). */
export function dataDirMark(dataDir: string | undefined): string | undefined {
  return dataDir && /^\/[\w./-]{1,200}$/.test(dataDir) ? `cvm-data-dir:${dataDir}` : undefined;
}

/** The chains of one installation: FORWARD jumps to `forward`, INPUT to `input`. */
export function chainNames(tag: string): { forward: string; input: string; node: string } {
  return { forward: `CVM-${tag}`, input: `CVM-${tag}-IN`, node: `CVM-${tag}-NODE` };
}

/** A short, stable name part for an owner (chain names are at most 28 characters). */
export function ownerChain(tag: string, ownerId: string): string {
  let hash = 0x811c9dc5;
  for (const char of ownerId) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  return `CVM-${tag}-${hash.toString(16).padStart(8, "0")}`;
}

const established = ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN"];

/** Matches packets coming from the environment: by its bridge port where known, and by its address. */
function from(environment: FirewalledEnvironment): string[] {
  return [
    ...(environment.port ? ["-m", "physdev", "--physdev-in", environment.port] : []),
    "-s",
    `${environment.address}/32`,
  ];
}

/**
 * The filter table's rules as `iptables-restore --noflush` input: each chain
 * of the installation declared (which empties it) and filled anew, so one
 * restore replaces the whole policy at once, never half of it.
 */
export function networkPolicyRules(input: NetworkPolicyInput): string {
  const chains = chainNames(input.tag);
  const owners = [...new Set(input.environments.map((e) => e.ownerId))].sort();
  const lines: string[] = [
    "*filter",
    `:${chains.forward} - [0:0]`,
    `:${chains.input} - [0:0]`,
    `:${chains.node} - [0:0]`,
  ];
  for (const owner of owners) lines.push(`:${ownerChain(input.tag, owner)} - [0:0]`);
  const rule = (chain: string, ...spec: string[]) => lines.push(["-A", chain, ...spec].join(" "));

  // A rule that only counts: it names whose chains these are.
  const mark = dataDirMark(input.dataDir);
  if (mark) rule(chains.forward, "-m", "comment", "--comment", mark);
  // FORWARD: connections from an environment to anything but the node.
  rule(chains.forward, ...established);
  for (const environment of input.environments) {
    // goto, not jump: the owner's chain has the last word (its RETURN goes back to FORWARD, past the drops below).
    rule(chains.forward, ...from(environment), "-g", ownerChain(input.tag, environment.ownerId));
  }
  for (const bridge of input.bridges) rule(chains.forward, "-i", bridge, "-j", "DROP");
  for (const owner of owners) {
    const chain = ownerChain(input.tag, owner);
    const reachable = input.environments.filter((e) => input.reach === "installation" || e.ownerId === owner);
    for (const peer of reachable) rule(chain, "-d", `${peer.address}/32`, "-j", "ACCEPT");
    for (const network of input.allowed) rule(chain, "-d", network, "-j", "ACCEPT");
    for (const server of input.nameservers) {
      for (const protocol of ["udp", "tcp"])
        rule(chain, "-d", `${server}/32`, "-p", protocol, "--dport", "53", "-j", "RETURN");
    }
    for (const network of closedNetworks) rule(chain, "-d", network, "-j", "DROP");
    // The internet: back to the engines' own rules, which accept it and translate the address.
    rule(chain, "-j", "RETURN");
  }

  // INPUT: connections from an environment to the node itself.
  rule(chains.input, ...established);
  for (const environment of input.environments) rule(chains.input, ...from(environment), "-g", chains.node);
  for (const bridge of input.bridges) rule(chains.input, "-i", bridge, "-j", "DROP");
  // Accepted, not returned, as FORWARD's openings are: what follows in INPUT (other installations'
  // chains, ones left by dead installations, the node's own rules) knows nothing of this
  // installation's settings and must not take back what its admin opened.
  for (const network of input.allowed) rule(chains.node, "-d", network, "-j", "ACCEPT");
  for (const server of input.nameservers) {
    for (const protocol of ["udp", "tcp"])
      rule(chains.node, "-d", `${server}/32`, "-p", protocol, "--dport", "53", "-j", "ACCEPT");
  }
  rule(chains.node, "-j", "DROP");
  lines.push("COMMIT", "");
  return lines.join("\n");
}

/** The jumps into the installation's chains, first in FORWARD and INPUT. */
export function policyJumps(tag: string): { chain: "FORWARD" | "INPUT"; target: string }[] {
  const chains = chainNames(tag);
  return [
    { chain: "FORWARD", target: chains.forward },
    { chain: "INPUT", target: chains.input },
  ];
}
