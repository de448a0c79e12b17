/**
 * The network policy of the installation's environments on this machine
 * (src/core/network-policy.ts), kept in iptables chains cvm owns: FORWARD
 * and INPUT jump to them first, ahead of the engines' own rules. The rules
 * are made from what runs (every running container of the installation in
 * the host's engine and in cvm's own, with its owner, address and bridge
 * port), and replaced whole with one `iptables-restore --noflush` whenever an
 * environment starts (before its own processes run), stops or goes, and when
 * an admin changes the network settings. Rules left from a container that
 * died behind cvm's back go with the next change.
 *
 * The chains belong to the installation and the data dir, so a second
 * installation (or a second server of the same one, with CVMs of its own)
 * on the node keeps its own and never rewrites these.
 */

import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { promisify } from "node:util";
import type Dockerode from "dockerode";
import type { Logger } from "pino";
import {
  chainNames,
  type FirewalledEnvironment,
  networkPolicyRules,
  ownerChain,
  policyJumps,
} from "../../core/network-policy.js";
import { defaultSettings, type EnvironmentNetwork } from "../../core/settings.js";
import { installationTag, type RunningAddress } from "../../docker/index.js";

const run = promisify(execFile);

/** The nameservers of a resolv.conf, IPv4 only (CVMs get the node's, and ask them on port 53). */
export function nameserversOf(resolvConf: string): string[] {
  return resolvConf
    .split("\n")
    .map((line) => /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(line)?.[1])
    .filter((server): server is string => !!server && !server.startsWith("127."));
}

/** The host side of a container's veth: its peer's index, read in the container's network namespace. */
async function bridgePort(pid: number, links: () => Promise<string>): Promise<string | undefined> {
  const { stdout } = await run("nsenter", ["-t", String(pid), "-n", "ip", "-o", "link", "show", "eth0"]);
  const peer = /eth0@if(\d+)/.exec(stdout)?.[1];
  if (!peer) return undefined;
  return new RegExp(`^${peer}: ([^@:]+)[@:]`, "m").exec(await links())?.[1];
}

export interface EnvironmentFirewallOptions {
  installationId?: string;
  dataDir: string;
  logger: Logger;
  /** The engines whose running containers are environments (the host's; cvm's own once it runs). */
  engines: () => Promise<FirewalledEngine[]>;
}

/** An engine whose running containers are environments, and the bridge they sit on. */
export interface FirewalledEngine {
  docker: Dockerode;
  addresses(): Promise<RunningAddress[]>;
  bridge(): Promise<string | undefined>;
}

/** How long the engine gets to describe one running container before the pass goes on without its bridge port. */
const inspectTimeoutMs = 10_000;

export class EnvironmentFirewall {
  private network: EnvironmentNetwork = defaultSettings.network;
  private readonly tag: string;
  /** The data dir, as the chains name it (networkPolicyRules' mark). */
  private readonly dataDir: string;
  private readonly ports = new Map<string, string | undefined>();
  private syncing?: Promise<void>;
  private again = false;
  private swept = false;

  constructor(private readonly options: EnvironmentFirewallOptions) {
    this.dataDir = resolve(options.dataDir);
    this.tag = installationTag(`${options.installationId ?? ""}:${this.dataDir}`);
  }

  /** The network settings changed (or the server started): the rules follow. */
  configure(network: EnvironmentNetwork): Promise<void> {
    this.network = network;
    return this.sync();
  }

  /**
   * Makes the rules match what runs now. Calls while one runs are folded into
   * one more pass after it, so the last state always wins.
   */
  sync(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.again = false;
          await this.apply();
        } while (this.again);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  private async environments(engines: FirewalledEngine[]): Promise<FirewalledEnvironment[]> {
    let links: Promise<string> | undefined;
    const hostLinks = () => {
      links ??= run("ip", ["-o", "link"]).then((r) => r.stdout);
      return links;
    };
    const found: FirewalledEnvironment[] = [];
    const seen = new Set<string>();
    for (const engine of engines) {
      const running = await engine.addresses();
      // The new containers' bridge ports are looked up side by side: twenty CVMs started at once each wait
      // for a pass that takes them in before their gate opens, and one after another was most of a pass.
      await Promise.all(
        running
          .filter((r) => !this.ports.has(r.containerId))
          .map(async ({ containerId }) => {
            // Bounded: the engine holds an inspect of a container it is stuck removing, and one such
            // container must not stop the policy of every other (nor the builds that wait on it).
            const pid = (
              await engine.docker
                .getContainer(containerId)
                .inspect({ abortSignal: AbortSignal.timeout(inspectTimeoutMs) })
                .catch(() => undefined)
            )?.State.Pid;
            // A container that did not answer is asked again at the next pass.
            if (pid) this.ports.set(containerId, await bridgePort(pid, hostLinks).catch(() => undefined));
          }),
      );
      for (const { containerId, environmentId, ownerId, address } of running) {
        seen.add(containerId);
        found.push({ environmentId, ownerId, address, port: this.ports.get(containerId) });
      }
    }
    for (const id of [...this.ports.keys()]) if (!seen.has(id)) this.ports.delete(id);
    return found;
  }

  private async apply(): Promise<void> {
    const engines = await this.options.engines();
    const environments = await this.environments(engines);
    const bridges = (await Promise.all(engines.map((e) => e.bridge()))).filter((b): b is string => !!b);
    const nameservers = nameserversOf(await readFile("/etc/resolv.conf", "utf8").catch(() => ""));
    const rules = networkPolicyRules({
      tag: this.tag,
      environments,
      reach: this.network.reach,
      allowed: this.network.allowedNetworks,
      nameservers,
      bridges,
      dataDir: this.dataDir,
    });
    await restore(rules);
    for (const { chain, target } of policyJumps(this.tag)) await ensureFirst(chain, target);
    // One listing for both sweeps: each touches only chains the other leaves alone.
    const { stdout: table } = await run("iptables", ["-w", "-S"]);
    await this.removeStaleChains(new Set(environments.map((e) => ownerChain(this.tag, e.ownerId))), false, table);
    if (!this.swept) {
      this.swept = true;
      await removeDeadPolicies(this.tag, this.options.logger, table);
    }
  }

  /**
   * When the server stops: with no environment of the installation running,
   * nothing of the policy is left on the node; otherwise it stays, since the
   * environments go on running without a server.
   */
  async close(): Promise<void> {
    await this.syncing?.catch(() => undefined);
    const engines = await this.options.engines();
    if ((await this.environments(engines)).length > 0) return;
    for (const { chain, target } of policyJumps(this.tag)) {
      const { stdout } = await run("iptables", ["-w", "-S", chain]);
      for (const rule of stdout.split("\n").filter((l) => l.startsWith("-A ") && l.endsWith(` -j ${target}`))) {
        await run("iptables", ["-w", "-D", ...rule.split(" ").slice(1)]).catch(() => undefined);
      }
    }
    await this.removeStaleChains(new Set(), true);
  }

  /** Owners' chains nothing jumps to any more (their last environment went); with `all`, every chain of these. */
  private async removeStaleChains(current: Set<string>, all = false, listed?: string): Promise<void> {
    const stdout = listed ?? (await run("iptables", ["-w", "-S"])).stdout;
    const fixed = new Set(all ? [] : Object.values(chainNames(this.tag)));
    const ownChain = (chain: string) =>
      chain === chainNames(this.tag).forward || chain.startsWith(`${chainNames(this.tag).forward}-`);
    const chains = stdout
      .split("\n")
      .filter((line) => line.startsWith("-N "))
      .map((line) => line.slice(3).trim())
      .filter((chain) => ownChain(chain) && !fixed.has(chain) && !current.has(chain));
    // All emptied first: a chain cannot go while another still jumps to it.
    for (const chain of chains) await run("iptables", ["-w", "-F", chain]).catch(() => undefined);
    for (const chain of chains) {
      await run("iptables", ["-w", "-X", chain]).catch((error) =>
        this.options.logger.warn({ err: error, chain }, "could not remove an unused firewall chain"),
      );
    }
  }
}

/**
 * Removes the chains of installations that can no longer have an
 * environment here: every bridge and bridge port their rules name is gone,
 * or the data dir their server marked them with is (a server that was
 * killed, or whose data dir went, never cleared its own). Left in place,
 * their jumps pile up in FORWARD and INPUT, each one more pass for every
 * packet; on a bridge others share (servers without an installation id, as
 * tools and tests make), a dead one's drops would even take their traffic.
 * A live installation names its bridges as soon as it has one, and its data
 * dir is there, so none of its chains is taken.
 */
export async function removeDeadPolicies(ownTag: string, logger: Logger, listed?: string): Promise<void> {
  const [table, { stdout: linkList }] = await Promise.all([
    listed ?? run("iptables", ["-w", "-S"]).then((r) => r.stdout),
    run("ip", ["-o", "link"]),
  ]);
  const links = new Set([...linkList.matchAll(/^\d+: ([^@:]+)[@:]/gm)].map((m) => m[1]));
  const chains = new Map<string, { chains: string[]; interfaces: string[]; dataDir?: string }>();
  for (const line of table.split("\n")) {
    const chain = /^-[NA] (CVM-([0-9a-f]{8})(?:-[A-Z0-9a-f]+)?)(?: |$)/.exec(line);
    if (!chain || chain[2] === ownTag) continue;
    const entry = chains.get(chain[2]) ?? { chains: [], interfaces: [] };
    chains.set(chain[2], entry);
    if (line.startsWith("-N ")) entry.chains.push(chain[1]);
    for (const named of line.matchAll(/ (?:-i|--physdev-in) (\S+)/g)) entry.interfaces.push(named[1]);
    entry.dataDir ??= / --comment "?cvm-data-dir:([^"\s]+)"?/.exec(line)?.[1];
  }
  for (const [tag, { chains: dead, interfaces, dataDir }] of chains) {
    const serverGone = dataDir !== undefined && !existsSync(dataDir);
    if (!serverGone && interfaces.some((name) => links.has(name))) continue;
    for (const { chain, target } of policyJumps(tag)) {
      for (const rule of table.split("\n").filter((l) => l.startsWith(`-A ${chain} `) && l.endsWith(` -j ${target}`))) {
        await run("iptables", ["-w", "-D", ...rule.split(" ").slice(1)]).catch(() => undefined);
      }
    }
    for (const chain of dead) await run("iptables", ["-w", "-F", chain]).catch(() => undefined);
    for (const chain of dead) await run("iptables", ["-w", "-X", chain]).catch(() => undefined);
    logger.info(
      { tag, chains: dead.length, dataDir },
      serverGone
        ? "removed the firewall chains of a server whose data dir is gone"
        : "removed the firewall chains of an installation with no bridge left",
    );
  }
}

function restore(rules: string): Promise<void> {
  return new Promise((resolveRestore, reject) => {
    const child = spawn("iptables-restore", ["-w", "--noflush"], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolveRestore() : reject(new Error(`iptables-restore failed (${code}): ${stderr.trim()}`)),
    );
    child.stdin.end(rules);
  });
}

/**
 * Puts the jump to `target` first in the chain: the engines insert their own
 * rules at the top when they start or make a network, and an ACCEPT of theirs
 * ahead of ours would let an environment past the policy. The new jump goes
 * in before the old one comes out, so there is no moment without it; the two
 * differ by a comment, so the old one is deleted by what it is, not by its
 * position (another server may be changing the chain at the same time).
 */
async function ensureFirst(chain: string, target: string): Promise<void> {
  const rules = (await run("iptables", ["-w", "-S", chain])).stdout.split("\n").filter((l) => l.startsWith("-A "));
  const ours = (rule: string) => rule.endsWith(` -j ${target}`);
  if (rules[0] && ours(rules[0]) && rules.filter(ours).length === 1) return;
  const old = rules.filter(ours);
  const marks = ["cvm-policy", "cvm-policy-first"];
  const mark = marks.find((m) => !old.some((rule) => rule.includes(`--comment ${m} `))) ?? marks[0];
  await run("iptables", ["-w", "-I", chain, "1", "-m", "comment", "--comment", mark, "-j", target]);
  for (const rule of old) {
    if (rule.includes(`--comment ${mark} `)) continue;
    await run("iptables", ["-w", "-D", ...rule.split(" ").slice(1)]).catch(() => undefined);
  }
}
