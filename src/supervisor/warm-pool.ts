/**
 * Warm pools on one machine (core/warm-pool.ts decides what to fill, drain
 * and claim): each member is a CVM built by the same supervisor code as any
 * other, under its own id, and recorded in `<engine>/pool/<id>.json` while it
 * waits, so that a restarted server finds it and reconcile never takes it for
 * an orphan. Claiming it makes it the environment that takes its id, in place:
 *
 * - hostname: the environment's name, in the CVM's own UTS namespace and in
 *   the engine's /etc/hostname and /etc/hosts (the supervisor writes those
 *   again before each boot, as the engine rewrites them from the pool's name);
 * - machine id: a new one in /etc/machine-id, which journald (restarted, its
 *   journal from the pool's life removed), D-Bus (restarted if running) and
 *   systemd (re-executed: PID 1 reads it once) then report;
 * - limits: the request's CPUs and memory, and the process limit the
 *   settings give now (docker update of its cgroup); its disks were made at
 *   the pool's size, which a claim must ask for;
 * - home: the member's own, made empty from the image when it was built and
 *   never used since; it stays the environment's (the volume is named by id).
 */

import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type Dockerode from "dockerode";
import type { Environment, RegistryCredentials } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import { resolveRuntime } from "../core/isolation-runtime.js";
import { environmentPidsLimit, pidsLimitNote } from "../core/pids-limit.js";
import type { BuildContext, Observation, PoolCapacity, WorkloadPool } from "../core/provider.js";
import { memberEnvironment, type PoolMember } from "../core/warm-pool.js";
import { ignoreMissing, labels, managedFilter, registryDigest } from "../docker/index.js";
import { containerName } from "./cvm-container.js";
import { readNodePidCapacity } from "./node-limits.js";
import { dockerLines, dockerStatus, execCollect, failedLines, parseReport, systemdStatusOf } from "./readiness.js";

const run = promisify(execFile);

/** What the pool needs of the supervisor that holds it. */
export interface PoolHost {
  engine(): Promise<Dockerode>;
  build(environment: Environment, context: BuildContext): Promise<Observation>;
  remove(environment: Environment, options: { keepHome: boolean }): Promise<void>;
}

/** The syslog identifier of the entry a claim writes to the CVM's journal. */
export const claimTag = "cvm-claim";

/**
 * Run inside the claimed CVM as root: $1 the hostname, $2 the machine id.
 * journald is restarted (its streams survive in systemd's file descriptor
 * store: a stop would cut them) and writes under the new id and name from
 * then on: the claim logs an entry of its own and waits until `journalctl`
 * (which shows only this machine id's journal) reads it back under the new
 * hostname, so that a CVM reported running has a journal of its own already.
 * The directories of the old id, the journal of the pool's life, are removed
 * in the background, and logind is restarted there only if the pool's life
 * started it. Then what the build log and the API need (systemd's state, the
 * failed units when degraded, Docker's units), with as few processes as can
 * say it; systemd re-executes itself on SIGTERM (reading the new id), last.
 */
export function claimScript(): string {
  return [
    "set -eu",
    'hostname "$1"',
    "if [ -d /run/systemd/system ]; then",
    "  old=$(cat /etc/machine-id 2>/dev/null || true)",
    "  printf '%s\\n' \"$2\" > /etc/machine-id",
    "  systemctl try-restart systemd-journald.service",
    "  (",
    "    systemctl try-restart systemd-logind.service",
    '    if [ -n "$old" ] && [ "$old" != "$2" ]; then rm -rf "/var/log/journal/$old" "/run/log/journal/$old"; fi',
    "  ) </dev/null >/dev/null 2>&1 &",
    `  logger -t ${claimTag} "claimed as $1"`,
    "  for i in $(seq 1 200); do",
    `    if journalctl -q --no-pager -o cat -t ${claimTag} _HOSTNAME="$1" 2>/dev/null | grep -q .; then echo journal=written; break; fi`,
    "    sleep 0.01",
    "  done",
    '  state=$(systemctl is-system-running 2>/dev/null || true); echo "state=$state"',
    failedLines,
    dockerLines,
    "  kill -TERM 1",
    "fi",
  ].join("\n");
}

/** The lines of the engine's /etc/hosts that named the old hostname, naming the new one instead. */
export function renameInHosts(hosts: string, from: string, to: string): string {
  return hosts
    .split("\n")
    .map((line) => {
      if (line.trimStart().startsWith("#")) return line;
      const [address, ...names] = line.split(/\s+/);
      if (!names.includes(from)) return line;
      return [address, ...names.map((name) => (name === from ? to : name))].join("\t");
    })
    .join("\n");
}

/**
 * The engine's /etc/hostname and /etc/hosts of a container, from the node's
 * side: files the engine keeps in its own data root and binds in, rewritten
 * by it from the container's configured hostname at every start.
 */
export async function writeHostnameFiles(info: Dockerode.ContainerInspectInfo, hostname: string): Promise<void> {
  const configured = info.Config.Hostname;
  if (info.HostnamePath) await writeFile(info.HostnamePath, `${hostname}\n`);
  if (info.HostsPath) {
    const hosts = await readFile(info.HostsPath, "utf8").catch(() => undefined);
    if (hosts !== undefined) await writeFile(info.HostsPath, renameInHosts(hosts, configured, hostname));
  }
}

/**
 * Before a claimed CVM boots again (its gate still holding): the engine's
 * files name the environment, and so does the UTS namespace the CVM starts
 * in (set from the node with its own `hostname`, entering only that namespace).
 */
export async function hostnameBeforeBoot(info: Dockerode.ContainerInspectInfo, hostname: string): Promise<void> {
  await writeHostnameFiles(info, hostname);
  await run("nsenter", [`--target=${info.State.Pid}`, "--uts", "hostname", hostname]);
}

/** The repository an image reference names, without its tag or digest. */
function repositoryOf(image: string): string {
  const at = image.indexOf("@");
  if (at >= 0) return image.slice(0, at);
  const lastSlash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  return colon > lastSlash ? image.slice(0, colon) : image;
}

export class CvmWarmPool implements WorkloadPool {
  constructor(
    private readonly host: PoolHost,
    /** Where members are recorded: `<engine>/pool`. */
    private readonly dir: string,
  ) {}

  private path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  private async record(member: PoolMember): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const partial = `${this.path(member.id)}.partial`;
    await writeFile(partial, `${JSON.stringify(member)}\n`, { mode: 0o600 });
    await rename(partial, this.path(member.id));
  }

  private async records(): Promise<PoolMember[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const members: PoolMember[] = [];
    for (const name of names.filter((n) => n.endsWith(".json"))) {
      const text = await readFile(join(this.dir, name), "utf8").catch(() => undefined);
      if (!text) continue;
      try {
        members.push(JSON.parse(text) as PoolMember);
      } catch {
        // A record cut short by a crash: its member is drained as unknown (its workload is an orphan then).
      }
    }
    return members;
  }

  /** The ids of members still recorded: their workloads are the pool's, not orphans. */
  async memberIds(): Promise<Set<string>> {
    return new Set((await this.records()).map((m) => m.id));
  }

  async members(): Promise<PoolMember[]> {
    const records = await this.records();
    if (records.length === 0) return [];
    const docker = await this.host.engine();
    const containers = await docker.listContainers({ all: true, filters: { label: [managedFilter] } });
    const running = new Map(containers.map((c) => [c.Labels[labels.environment], c.State === "running"]));
    return records.map((member) => {
      if (member.state !== "ready" || running.get(member.id)) return member;
      const reason = running.has(member.id) ? "its CVM stopped while it waited" : "its CVM vanished while it waited";
      return { ...member, state: "failed" as const, reason };
    });
  }

  async fill(member: PoolMember, context: BuildContext): Promise<PoolMember> {
    await this.record({ ...member, state: "filling" });
    try {
      await this.host.build(memberEnvironment(member, resolveRuntime(member.runtimeSetting)), context);
      const docker = await this.host.engine();
      const ready: PoolMember = {
        ...member,
        state: "ready",
        imageVersion: await this.localVersion(docker, member.image),
        readyAt: new Date().toISOString(),
      };
      await this.record(ready);
      return ready;
    } catch (error) {
      await this.record({ ...member, state: "failed", reason: (error as Error).message }).catch(() => undefined);
      throw error;
    }
  }

  async claim(member: PoolMember, environment: Environment, context: BuildContext): Promise<Observation> {
    const begun = Date.now();
    // Off the record first: from here on the workload is the environment's, whatever happens next.
    const claimed = `${this.path(member.id)}.claimed`;
    const docker = await this.host.engine();
    const container = docker.getContainer(containerName(member.id));
    const [, info, node] = await Promise.all([
      rename(this.path(member.id), claimed).then(
        () => rm(claimed, { force: true }),
        () => {
          throw new CvmError("CONFLICT", `the pooled CVM ${member.id} is no longer in its pool`);
        },
      ),
      container.inspect(),
      readNodePidCapacity(),
    ]);
    if (!info.State.Running) throw new CvmError("CONFLICT", `the pooled CVM ${member.id} is not running`);
    const machineId = randomBytes(16).toString("hex");
    const memory = Math.round(environment.memoryGiB * 1024 ** 3);
    const personalised = Promise.all([
      execCollect(container, ["/bin/sh", "-c", claimScript(), "claim", environment.name, machineId]),
      writeHostnameFiles(info, environment.name),
      container.update({
        NanoCpus: Math.round(environment.cpu * 1e9),
        Memory: memory,
        MemorySwap: memory,
        PidsLimit: environmentPidsLimit(context.settings.limits.pids, node),
      }),
    ]);
    personalised.catch(() => undefined);
    await context.enter("starting");
    const [personal] = await personalised;
    if (personal.exitCode !== 0) {
      throw new CvmError("INTERNAL", `the pooled CVM could not be made ${environment.name}'s`, {
        detail: personal.output,
      });
    }
    const report = parseReport(personal.output);
    const systemdBooted = report.state !== "unknown";
    if (systemdBooted && !/^journal=written$/m.test(personal.output)) {
      throw new CvmError("INTERNAL", `journald in the pooled CVM did not write under ${environment.name}'s name`, {
        detail: personal.output,
      });
    }
    await context.log(
      `claim: hostname ${environment.name}, a machine id of its own, its journal begun anew (its first entry read back)`,
    );
    await context.log(
      `claim: limits ${environment.cpu} CPUs, ${environment.memoryGiB} GiB memory; disk ${environment.diskGiB} GiB`,
    );
    await context.log(pidsLimitNote(context.settings.limits.pids, node));
    const systemd = systemdBooted ? systemdStatusOf(report.state) : "unavailable";
    const docker_ = await dockerStatus(info.State.Pid, report, 0);
    await context.log(
      `claim: systemd ${systemd}, docker ${docker_}; done in ${((Date.now() - begun) / 1000).toFixed(2)} s`,
    );
    const runtime = (info.Config.Labels?.[labels.runtime] as Observation["runtime"] | undefined) ?? "userns";
    return { exists: true, running: true, runtime, systemd, failedUnits: report.failedUnits, docker: docker_ };
  }

  async drain(member: PoolMember): Promise<void> {
    await rm(this.path(member.id), { force: true });
    await this.host.remove(memberEnvironment(member, resolveRuntime(member.runtimeSetting)), { keepHome: false });
  }

  async forget(member: PoolMember): Promise<void> {
    await rm(this.path(member.id), { force: true });
  }

  async imageVersion(image: string, credentials?: RegistryCredentials): Promise<string | undefined> {
    const answer = await registryDigest(await this.host.engine(), image, credentials);
    return "digest" in answer ? answer.digest : undefined;
  }

  /** The engine's machine: its CPUs and memory, as `docker info` gives them. */
  async capacity(): Promise<PoolCapacity | undefined> {
    const docker = await this.host.engine();
    const info = (await docker.info()) as { NCPU?: number; MemTotal?: number };
    if (!info.NCPU || !info.MemTotal) return undefined;
    return { cpu: info.NCPU, memoryGiB: info.MemTotal / 1024 ** 3 };
  }

  /** The registry digest the engine's copy of the image was pulled as, if it came from a registry. */
  private async localVersion(docker: Dockerode, image: string): Promise<string | undefined> {
    const info = await ignoreMissing(docker.getImage(image).inspect());
    const repository = repositoryOf(image);
    const digests = info?.RepoDigests ?? [];
    const own = digests.find((d) => d.startsWith(`${repository}@`)) ?? (digests.length === 1 ? digests[0] : undefined);
    return own?.slice(own.indexOf("@") + 1);
  }
}
