/**
 * Standard (non-CVM) environments on the host engine: one labeled container
 * each, with the CPU and memory asked for, and a named volume for /home that
 * outlives rebuilds. Never privileged, no engine socket, no host path.
 */

import type Dockerode from "dockerode";
import type { Logger } from "pino";
import type { Environment } from "../../core/environment.js";
import { CvmError } from "../../core/errors.js";
import { environmentPidsLimit, pidsLimitNote } from "../../core/pids-limit.js";
import type { BuildContext, ExecOptions, ExecSession, LabeledWorkload, Observation } from "../../core/provider.js";
import {
  ensureImage,
  homeVolumeName,
  ignoring,
  isInstallations,
  labels,
  listLabeledWorkloads,
  listRunningAddresses,
  managedFilter,
  type RunningAddress,
  removeContainer,
  startExec,
  statusOf,
  stopContainer,
} from "../../docker/index.js";
import { diskVolumeOptions, ensureDisk, releaseDisk } from "../../supervisor/environment-disks.js";
import { readNodePidCapacity } from "../../supervisor/node-limits.js";
import { containerName, containerRequest, homeVolumeRequest, standardNetwork } from "./workload.js";

/** What a standard environment reports of itself: a plain container promises neither systemd nor Docker. */
const standard: Pick<Observation, "runtime" | "systemd" | "docker"> = {
  runtime: "none",
  systemd: "unavailable",
  docker: "absent",
};

export class StandardEnvironments {
  constructor(
    private readonly docker: Dockerode,
    private readonly logger: Logger,
    private readonly engineIsLocal: boolean,
    private readonly installationId: string | undefined,
    /** Called once a container has started, before its build returns: the network policy takes it in; answers a line for the build log. */
    private readonly started: () => Promise<string | undefined> = async () => undefined,
    /** Where the environments' home disks are kept, when the host engine runs on this machine. */
    private readonly disksDir?: string,
  ) {}

  /**
   * Containers of one environment, found by label (its name may differ after a
   * rename of the scheme). Environment ids are unique to an installation, so
   * this finds only its own, also those made before containers named it.
   */
  private async containersOf(environmentId: string): Promise<Dockerode.ContainerInfo[]> {
    return this.docker.listContainers({
      all: true,
      filters: { label: [managedFilter, `${labels.environment}=${environmentId}`] },
    });
  }

  private async inspect(environment: Environment): Promise<Dockerode.ContainerInspectInfo | undefined> {
    const [found] = await this.containersOf(environment.id);
    if (!found) return undefined;
    return ignoring([404], this.docker.getContainer(found.Id).inspect());
  }

  private network?: Promise<string>;

  /** The id of the installation's network for standard environments, made when first needed. */
  private standardNetworkId(): Promise<string> {
    this.network ??= (async () => {
      const request = standardNetwork(this.installationId);
      const find = async () =>
        (await this.docker.listNetworks({ filters: { name: [request.Name] } }))
          .filter((n) => n.Name === request.Name)
          .sort((a, b) => a.Id.localeCompare(b.Id))[0]?.Id;
      const existing = await find();
      if (existing) return existing;
      // Another server of the installation may create it at the same moment; either way, one is found after.
      await ignoring([409], this.docker.createNetwork(request));
      const made = await find();
      if (!made) throw new CvmError("UNAVAILABLE", `Could not create the ${request.Name} network`);
      return made;
    })().catch((error) => {
      this.network = undefined;
      throw error;
    });
    return this.network;
  }

  async build(environment: Environment, context: BuildContext): Promise<Observation> {
    const { log, signal } = context;
    const made = (await this.containersOf(environment.id)).find(
      (c) => environment.buildId && c.Labels[labels.build] === environment.buildId,
    );
    if (made) {
      // A server stopped or killed in the middle of this build: the container it made goes on.
      await log(`resuming the build with its container ${made.Names[0]?.replace(/^\//, "") ?? made.Id.slice(0, 12)}`);
      return this.boot(this.docker.getContainer(made.Id), context);
    }
    await context.enter("pulling");
    const pulledAt = Date.now();
    await log(`pulling ${environment.image}${context.credentials ? " with registry credentials" : ""}`);
    const source = await ensureImage(this.docker, environment.image, {
      credentials: context.credentials,
      log,
      signal,
      ownCopy: "any-failure",
    });
    await log(
      `image ready from the ${source === "registry" ? "registry" : "local engine"} in ${Date.now() - pulledAt} ms`,
    );

    signal.throwIfAborted();
    await context.enter("creating");
    await this.removeContainers(environment.id);
    await log(await this.prepareHome(environment));
    // The host engine's node, when it is this machine; a remote engine's is taken to have the kernel's defaults.
    const node = this.engineIsLocal ? await readNodePidCapacity() : {};
    const rootfs = await this.rootfsLimit(environment.diskGiB);
    const create = async (storageOpt = rootfs.storageOpt) =>
      this.docker.createContainer(
        containerRequest({
          environment,
          image: environment.image,
          networkId: await this.standardNetworkId(),
          installationId: this.installationId,
          pidsLimit: environmentPidsLimit(context.settings.limits.pids, node),
          storageOpt,
        }),
      );
    const container = await create().catch(async (error) => {
      if (rootfs.storageOpt && /storage-?opt|quota/i.test(String(error))) {
        rootfs.note = `/ is not limited: the host engine refused a size (${String(error).split("\n")[0]})`;
        return create(undefined);
      }
      if (statusOf(error) !== 404 || !/network/i.test(String(error))) throw error;
      // The network was removed behind our back: make it again, once.
      this.network = undefined;
      return create();
    });
    const request = { name: containerName(environment) };
    await log(
      `created container ${request.name} (${container.id.slice(0, 12)}): ${environment.cpu} CPU, ${environment.memoryGiB} GiB memory, not privileged`,
    );
    await log(`disk: ${rootfs.note}`);
    await log(pidsLimitNote(context.settings.limits.pids, node));

    signal.throwIfAborted();
    return this.boot(container, context);
  }

  /**
   * The host engine can cap a container's writable layer only with overlay2
   * on xfs mounted with project quotas; cvm cannot change the engine's data
   * root, so elsewhere / is not limited and the build log says so.
   */
  private async rootfsLimit(diskGiB: number): Promise<{ storageOpt?: Record<string, string>; note: string }> {
    const info = await this.docker.info().catch(() => undefined);
    const backing = (info?.DriverStatus as [string, string][] | undefined)?.find(
      ([k]) => k === "Backing Filesystem",
    )?.[1];
    if (info?.Driver === "overlay2" && backing === "xfs") {
      return { storageOpt: { size: `${diskGiB}G` }, note: `/ is limited to ${diskGiB} GiB (overlay2 on xfs)` };
    }
    return {
      note: `/ is not limited: the host engine's data root is ${info?.Driver ?? "unknown"} on ${backing ?? "unknown"}, not overlay2 on xfs with project quotas`,
    };
  }

  /**
   * /home: a named volume on a disk of its own, sized diskGiB, where the
   * engine runs on this machine and loop devices work; otherwise a plain
   * volume, and the build log says the size is not enforced.
   */
  private async prepareHome(environment: Environment): Promise<string> {
    const name = homeVolumeName(environment.id);
    const existing = await ignoring([404], this.docker.getVolume(name).inspect());
    if (existing) {
      return existing.Options?.device
        ? `disk: /home is limited to ${environment.diskGiB} GiB (volume ${name} on an ext4 disk of its own)`
        : `disk: /home is volume ${name}, made before home disks: not limited`;
    }
    try {
      if (!this.disksDir) throw new Error("the host engine is not on this machine");
      const { disk } = await ensureDisk(this.disksDir, environment.id, "home", environment.diskGiB, { uid: 0, gid: 0 });
      await this.docker.createVolume(homeVolumeRequest(environment, this.installationId, diskVolumeOptions(disk)));
      return `disk: /home is limited to ${environment.diskGiB} GiB (volume ${name} on an ext4 disk of its own)`;
    } catch (error) {
      await this.docker.createVolume(homeVolumeRequest(environment, this.installationId));
      return `disk: /home is volume ${name}, not limited: no disk of its own (${(error as Error).message.split("\n")[0]})`;
    }
  }

  private async boot(container: Dockerode.Container, context: BuildContext): Promise<Observation> {
    await context.enter("starting");
    await ignoring([304], container.start());
    const note = await this.started();
    if (note) await context.log(note);
    const info = await container.inspect();
    if (!info.State.Running) {
      const logs = ((await container.logs({ stdout: true, stderr: true, tail: 20 }).catch(() => "")) as Buffer)
        .toString("utf8")
        .replace(/[\x00-\x08]/g, "")
        .trim();
      throw new CvmError("UNAVAILABLE", `The container stopped right after starting: ${exitReason(info)}`, {
        detail: logs || undefined,
      });
    }
    await context.log(`started; running as ${info.Name.replace(/^\//, "")}`);
    return observation(info);
  }

  async start(environment: Environment, context: BuildContext): Promise<Observation> {
    const info = await this.inspect(environment);
    if (!info) {
      await context.log("no container for this environment any more; building it again");
      return this.build(environment, context);
    }
    return this.boot(this.docker.getContainer(info.Id), context);
  }

  async stop(environment: Environment, timeoutSeconds: number): Promise<void> {
    for (const found of await this.containersOf(environment.id)) {
      await stopContainer(this.docker.getContainer(found.Id), timeoutSeconds);
    }
  }

  private async removeContainers(environmentId: string): Promise<void> {
    for (const found of await this.containersOf(environmentId)) {
      await removeContainer(this.docker.getContainer(found.Id), { volumes: true });
    }
  }

  async discard(environment: Environment, _options: { keepDockerData: boolean }): Promise<void> {
    await this.removeContainers(environment.id);
  }

  async remove(environment: Environment, options: { keepHome: boolean }): Promise<void> {
    await this.removeContainers(environment.id);
    await this.removeVolumes(environment.id, options.keepHome);
  }

  /** Every volume labeled for the environment, and its home volume by name (kept when asked). */
  private async removeVolumes(environmentId: string, keepHome: boolean): Promise<void> {
    const { Volumes } = await this.docker.listVolumes({
      filters: { label: [`${labels.environment}=${environmentId}`] },
    });
    const names = new Set([...(Volumes ?? []).map((v) => v.Name), homeVolumeName(environmentId)]);
    if (keepHome) names.delete(homeVolumeName(environmentId));
    for (const name of names) await ignoring([404], this.docker.getVolume(name).remove());
    if (this.disksDir) await releaseDisk(this.disksDir, environmentId, "home", keepHome);
  }

  async observe(environment: Environment): Promise<Observation> {
    const info = await this.inspect(environment);
    if (!info) {
      return {
        ...standard,
        failedUnits: [],
        exists: false,
        running: false,
        reason: "no container for this environment",
      };
    }
    return observation(info);
  }

  async exec(environment: Environment, options: ExecOptions): Promise<ExecSession> {
    const info = await this.inspect(environment);
    if (!info?.State.Running) {
      throw new CvmError("CONFLICT", `Environment ${environment.name} is not running`, {
        detail: info ? exitReason(info) : "it has no container",
      });
    }
    return startExec(this.docker, this.docker.getContainer(info.Id), options, { engineIsLocal: this.engineIsLocal });
  }

  /** The node's pid of the environment's running container, whose namespaces are entered to reach inside (src/netns). */
  async pid(environment: Environment): Promise<number> {
    if (!this.engineIsLocal) {
      throw new CvmError("UNAVAILABLE", "Reaching a port or socket inside needs the engine on this machine", {
        detail: "The docker provider's engine is remote (DOCKER_HOST is not a local socket)",
      });
    }
    const info = await this.inspect(environment);
    if (!info?.State.Running || !info.State.Pid) {
      throw new CvmError("CONFLICT", `Environment ${environment.name} is not running`, {
        detail: info ? exitReason(info) : "it has no container",
      });
    }
    return info.State.Pid;
  }

  async listWorkloads(): Promise<LabeledWorkload[]> {
    return listLabeledWorkloads(this.docker, this.installationId);
  }

  /** The running environments' addresses, for the network policy. */
  addresses(): Promise<RunningAddress[]> {
    return listRunningAddresses(this.docker, this.installationId);
  }

  /** The bridge of the installation's network (made now if it is not yet). */
  async bridge(): Promise<string | undefined> {
    const id = await this.standardNetworkId().catch(() => undefined);
    return id ? `br-${id.slice(0, 12)}` : undefined;
  }

  /** True when `ref` was a container of this installation in this engine and is now gone with its volumes. */
  async removeWorkload(ref: string): Promise<boolean> {
    const info = await ignoring([404], this.docker.getContainer(ref).inspect());
    const environmentId = info?.Config.Labels?.[labels.environment];
    if (!isInstallations(info?.Config.Labels, this.installationId) || !environmentId) return false;
    await removeContainer(this.docker.getContainer(info.Id), { volumes: true });
    if ((await this.containersOf(environmentId)).length === 0) await this.removeVolumes(environmentId, false);
    this.logger.info({ container: info.Name, environmentId }, "removed an orphaned workload and its volumes");
    return true;
  }

  async close(): Promise<void> {}
}

function exitReason(info: Dockerode.ContainerInspectInfo): string {
  const { State } = info;
  if (State.Running) return "running";
  const oom = State.OOMKilled ? ", killed for exceeding its memory limit" : "";
  const error = State.Error ? `: ${State.Error}` : "";
  return `exited with code ${State.ExitCode}${oom}${error}`;
}

function observation(info: Dockerode.ContainerInspectInfo): Observation {
  const running = info.State.Running;
  return { ...standard, failedUnits: [], exists: true, running, ...(running ? {} : { reason: exitReason(info) }) };
}
