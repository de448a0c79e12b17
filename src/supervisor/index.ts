/**
 * The supervising side of CVMs on one machine: everything a Provider does,
 * for environments with `cvm: true`. The docker provider delegates to it.
 *
 * One build, each step a line in the build log: the engine (cvm's own,
 * user-namespace-remapped dockerd), the isolation runtime, the image (pulled,
 * or copied from the node's engine), the container (never privileged), the
 * entrypoint rule (/sbin/init from the image's own filesystem), the cgroup
 * handoff while the start gate holds init back, the release, and readiness
 * (systemd running or degraded, the inner dockerd answering).
 */

import { chown, mkdir, readFile, stat } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import type Dockerode from "dockerode";
import type { Logger } from "pino";
import type { Environment } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import { type CvmRuntime, chooseRuntime } from "../core/isolation-runtime.js";
import { environmentPidsLimit, pidsLimitNote } from "../core/pids-limit.js";
import type {
  BuildContext,
  ExecOptions,
  ExecSession,
  LabeledWorkload,
  Observation,
  Provider,
  WorkloadPool,
} from "../core/provider.js";
import {
  dockerClient,
  ensureImage,
  homeVolumeName,
  ignoreMissing,
  imageId,
  installationLabels,
  isInstallations,
  labels,
  listLabeledWorkloads,
  listRunningAddresses,
  type RunningAddress,
  removeContainer,
  startExec,
  stopContainer,
} from "../docker/index.js";
import { type ApparmorChoice, ensureApparmorProfile } from "./apparmor.js";
import { delegateCgroups, removeContainerCgroups } from "./cgroup-delegation.js";
import {
  boundVolume,
  containerName,
  cvmContainerRequest,
  dockerVolumeName,
  type VolumeSources,
} from "./cvm-container.js";
import { type CvmDeviceNodes, ensureDeviceNodes } from "./cvm-devices.js";
import { type DiskLimit, diskLimit } from "./disk-limit.js";
import { CvmEngine } from "./engine.js";
import {
  diskVolumeOptions,
  ensureDisk,
  ensureRootDisk,
  layerDirOf,
  releaseDisk,
  releaseRootDisk,
  remountDisks,
  removeDiskVolume,
  sparesSettled,
} from "./environment-disks.js";
import { ContainerFilesystem } from "./image-filesystem.js";
import { findInitPath, type InitPath } from "./init-path.js";
import { Lxcfs, withLxcfs } from "./lxcfs.js";
import { binfmtNote } from "./multi-arch.js";
import { readNodePidCapacity } from "./node-limits.js";
import { systemdReport, waitForSystemdBus } from "./readiness.js";
import { cvmSeccompProfile } from "./seccomp.js";
import { ensureGateBinary, gateMounts, gateState, releaseGate } from "./start-gate.js";
import { ensureSysfsReference } from "./sysfs-reference.js";
import { maskedUnits } from "./systemd-masks.js";
import { CvmWarmPool, hostnameBeforeBoot } from "./warm-pool.js";

export interface CvmSupervisorOptions {
  /** cvm's own isolated engine keeps its data root, exec root and socket below this. */
  dataDir: string;
  logger: Logger;
  /** The host's engine, where a laptop user's freshly built image may be found. */
  hostDockerHost?: string;
  /** How long systemd may take to finish booting before the build fails (default 180 s). */
  readyTimeoutSeconds?: number;
  /**
   * Directories bound as the environment's /home and /var/lib/docker instead
   * of the engine's named volumes: in a Kubernetes Pod, subpaths of its
   * claim. The supervisor makes them the CVM root's; what is in them is kept
   * and removed by whoever owns the claim.
   */
  volumeSources?: VolumeSources;
  /** Registries (host:port) images may be pulled from over plain HTTP (an in-cluster registry). */
  insecureRegistries?: string[];
  /**
   * The installation whose CVMs these are: their objects carry it, and only
   * its own are listed or removed. Absent in a Pod, whose engine is its own.
   */
  installationId?: string;
  /**
   * Called while a CVM's start gate still holds its init, once its network
   * exists: the node's network policy takes it in before anything of the
   * image runs. Answers a line for the build log.
   */
  beforeRelease?: () => Promise<string | undefined>;
}

/** The docker provider's CVMs; it reaches inside them itself, through `pid`. */
export type CvmSupervisor = Omit<
  Provider,
  "name" | "pool" | "dial" | "spliceSocket" | "listeningPorts" | "listenUnix"
> & {
  readonly pool: WorkloadPool;
  /** The node's pid of a running CVM's init. */
  pid(environment: Environment): Promise<number>;
  /** The running CVMs' addresses, for the node's network policy. */
  addresses(): Promise<RunningAddress[]>;
  /** The bridge CVMs sit on, once the engine runs. */
  bridge(): Promise<string | undefined>;
  /** cvm's own engine, once it runs. */
  engineClient(): Dockerode;
};

/** What a CVM's container needs besides its image (Supervisor.setUp). */
interface Setup {
  runtime: CvmRuntime;
  storage: { dockerDisk?: string; enforced: boolean; note: string };
  gateBinary: string;
  apparmor: ApparmorChoice;
  rootfs: DiskLimit;
  devices: CvmDeviceNodes;
  sysfsReference?: string;
  pidsLimit: number;
  /** LXCFS's files over the CVM's /proc, as the settings ask. */
  lxcfs: boolean;
  notes: string[];
}

export async function createCvmSupervisor(options: CvmSupervisorOptions): Promise<CvmSupervisor> {
  return new Supervisor(options);
}

/** Waits for `work`, or rejects as soon as the build is aborted (the work itself ends with the container). */
function untilAborted<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** systemd is what the API tracks; another init (busybox, tini) at /sbin/init still runs as PID 1. */
function isSystemd(init: InitPath): boolean {
  return init.found && /(^|\/)systemd$/.test(init.target);
}

const absent = (runtime: Environment["runtime"]): Observation => ({
  exists: false,
  running: false,
  runtime,
  systemd: "unknown",
  failedUnits: [],
  docker: "unknown",
});

class Supervisor implements CvmSupervisor {
  private readonly engine: CvmEngine;
  private readonly logger: Logger;
  private readonly hostDocker?: Dockerode;
  private readonly initPaths = new Map<string, InitPath>();
  private readonly lxcfs: Lxcfs;
  /** Built once per process: concurrent builds share the one compile. */
  private gateBinary?: Promise<string>;
  /** The seccomp profile as the engine takes it: the same for every CVM. */
  private readonly seccomp = JSON.stringify(cvmSeccompProfile());

  readonly pool: CvmWarmPool;

  constructor(private readonly options: CvmSupervisorOptions) {
    this.logger = options.logger.child({ component: "cvm-supervisor" });
    this.engine = new CvmEngine({
      dataDir: options.dataDir,
      logger: options.logger,
      insecureRegistries: options.insecureRegistries,
    });
    this.hostDocker = options.hostDockerHost ? dockerClient(options.hostDockerHost) : undefined;
    this.lxcfs = new Lxcfs(join(options.dataDir, "lxcfs"), this.logger);
    this.pool = new CvmWarmPool(
      {
        engine: () => this.engine.ensure(),
        build: (environment, context) => this.build(environment, context),
        remove: (environment, options) => this.remove(environment, options),
      },
      // Per installation: two on one engine each keep their own pools.
      join(this.engine.paths.root, "pool", options.installationId ?? "local"),
    );
  }

  private async container(environment: Environment): Promise<Dockerode.Container> {
    const docker = await this.engine.ensure();
    return docker.getContainer(containerName(environment.id));
  }

  private async inspect(environment: Environment): Promise<Dockerode.ContainerInspectInfo | undefined> {
    return ignoreMissing((await this.container(environment)).inspect());
  }

  async build(environment: Environment, context: BuildContext): Promise<Observation> {
    const log = (text: string) => context.log(text);
    const begun = Date.now();
    const docker = await this.engine.ensure();
    await log(`engine: cvm's own dockerd (userns-remap) answering on ${this.engine.paths.socket}`);
    const runtime = chooseRuntime(context.settings.runtime, await this.engine.runtimes());
    await log(`isolation runtime: ${runtime} (setting: ${context.settings.runtime})`);
    context.signal.throwIfAborted();
    const existing = await this.inspect(environment);
    if (existing && environment.buildId && existing.Config.Labels?.[labels.build] === environment.buildId) {
      // A server stopped or killed in the middle of this build: the container it made goes on.
      await log(`resuming the build with its container ${containerName(environment.id)}`);
      await context.enter("starting");
      return this.resume(environment, existing, log, context.signal);
    }

    // What needs no image (storage, the gate, the security profiles) is made while the image is pulled;
    // and when the engine has the image already, the container too: the pull only asks the registry
    // whether it changed, and a container of a replaced image is made again.
    const setup = this.setUp(docker, environment, runtime, context, existing?.Id);
    setup.catch(() => undefined);
    const local = await imageId(docker, environment.image);
    const early = local ? setup.then((ready) => this.create(docker, environment, ready)) : undefined;
    early?.catch(() => undefined);
    await context.enter("pulling");
    await log(`pull: ${environment.image}`);
    const pulledAt = Date.now();
    const source = await ensureImage(docker, environment.image, {
      credentials: context.credentials,
      log,
      signal: context.signal,
      // cvm's engine is shared by users whose credentials differ: its copy stands in only for an unreachable registry.
      ownCopy: "unreachable",
      nodeEngine: this.hostDocker,
    });
    const took = `${((Date.now() - pulledAt) / 1000).toFixed(1)} s`;
    const sources = {
      registry: `pulled from its registry in ${took}`,
      "node-engine": `copied from the node's engine in ${took}`,
      engine: `already in cvm's engine (checked in ${took})`,
    };
    await log(`pull: ${environment.image} ${sources[source]}`);
    const made = await setup;
    for (const note of made.notes) await log(note);
    context.signal.throwIfAborted();

    await context.enter("creating");
    let created = early ? await early : await this.create(docker, environment, made);
    if (early && created.image !== (await imageId(docker, environment.image))) {
      await log("create: the image changed in its registry while the container was made; making it again");
      await this.removeContainer(docker, created.container.id);
      created = await this.create(docker, environment, made);
    }
    const { container, createdAt } = created;
    await log(created.diskNote);
    await log(created.procNote);
    await log(
      `create: ${containerName(environment.id)} with ${environment.cpu} CPUs, ${environment.memoryGiB} GiB memory`,
    );
    await context.enter("starting");
    const observation = await this.boot(container, environment, runtime, log, context.signal);
    await log(`ready ${((Date.now() - createdAt) / 1000).toFixed(2)} s after create`);
    await log(`build done in ${((Date.now() - begun) / 1000).toFixed(2)} s`);
    return observation;
  }

  /**
   * Everything a CVM's container needs besides its image, each part on its
   * own so they overlap: the old container gone (a rebuild starts from a
   * fresh one, its cgroups and writable layer's disk go with the old one; its
   * volumes stay), /home and /var/lib/docker, the start gate, the AppArmor
   * profile, whether the engine can limit the root filesystem, the process
   * limit. `notes` are the lines the build log gets once the image is in.
   */
  private async setUp(
    docker: Dockerode,
    environment: Environment,
    runtime: CvmRuntime,
    context: BuildContext,
    old: string | undefined,
  ): Promise<Setup> {
    this.gateBinary ??= ensureGateBinary(this.engine.paths.bin).catch((error) => {
      this.gateBinary = undefined;
      throw error;
    });
    const userns = runtime === "userns";
    const [storage, gateBinary, apparmor, rootfs, devices, sysfs, node] = await Promise.all([
      (old ? this.removeContainer(docker, old) : Promise.resolve()).then(() =>
        this.prepareStorage(docker, environment, runtime),
      ),
      this.gateBinary,
      ensureApparmorProfile(),
      diskLimit(this.engine.paths.dataRoot, environment.diskGiB),
      userns ? this.devices(context) : { nodes: {}, notes: [] },
      userns
        ? ensureSysfsReference(this.engine.paths.root).then(
            (reference) => ({ reference, note: undefined }),
            (error: CvmError) => ({ reference: undefined, note: `${error.message}: ${error.detail ?? ""}` }),
          )
        : { reference: undefined, note: undefined },
      readNodePidCapacity(),
    ]);
    const notes = [`security: ${apparmor.note}`];
    if (userns) {
      notes.push(
        "security: seccomp = Docker's default profile for its default capabilities + SYS_ADMIN, NET_ADMIN, plus keyctl, pivot_root (for nested containers)",
        "security: not privileged; every capability, inside its user namespace only; /proc and /sys unmasked (nested containers mount them again)",
        ...devices.notes.map((note) => `devices: ${note}`),
      );
      if (sysfs.note) notes.push(`nesting unavailable: ${sysfs.note}`);
    }
    notes.push(pidsLimitNote(context.settings.limits.pids, node));
    return {
      runtime,
      storage,
      gateBinary,
      apparmor,
      rootfs,
      devices: devices.nodes,
      sysfsReference: sysfs.reference,
      pidsLimit: environmentPidsLimit(context.settings.limits.pids, node),
      lxcfs: context.settings.lxcfs,
      notes,
    };
  }

  /** cvm's own FUSE and TUN nodes, as the settings allow and the node can give them; each outcome a note. */
  private async devices(context: BuildContext): Promise<{ nodes: CvmDeviceNodes; notes: string[] }> {
    const root = this.engine.root;
    if (!root) return { nodes: {}, notes: [] };
    return ensureDeviceNodes(join(this.engine.paths.root, "devices"), root, {
      fuse: context.settings.fuseDevice,
      tun: context.settings.tunDevice,
    });
  }

  /**
   * Creates the container and, where the engine cannot limit its writable
   * layer itself, puts that layer on a disk of its own; answers it with the
   * image id it was made from, when, and the disk limit's line for the log.
   */
  private async create(
    docker: Dockerode,
    environment: Environment,
    setup: Setup,
  ): Promise<{ container: Dockerode.Container; image: string; createdAt: number; diskNote: string; procNote: string }> {
    const { runtime, storage, rootfs } = setup;
    const request = cvmContainerRequest({
      environment,
      image: environment.image,
      runtime,
      gateBinary: setup.gateBinary,
      pidsLimit: setup.pidsLimit,
      seccomp: runtime === "userns" ? this.seccomp : undefined,
      apparmor: setup.apparmor.profile,
      storageOpt: rootfs.storageOpt,
      installationId: this.options.installationId,
      dockerDisk: setup.storage.dockerDisk,
      devices: setup.devices,
      sysfsReference: setup.sysfsReference,
    });
    const proc = setup.lxcfs
      ? await this.lxcfs.ensure()
      : { mountpoint: undefined, note: "the kernel's own (an admin turned LXCFS off in the Infrastructure settings)" };
    const createdAt = Date.now();
    const container = await docker.createContainer(withLxcfs(request, proc.mountpoint));
    const [root, info] = await Promise.all([
      rootfs.storageOpt ? rootfs.note : this.rootDisk(container, environment),
      container.inspect(),
    ]);
    const enforced = storage.enforced && !/not limited/.test(root);
    const diskNote = `${enforced ? "disk limit" : "disk limit not enforced"}: ${storage.note}; ${root}`;
    return { container, image: info.Image, createdAt, diskNote, procNote: `/proc: ${proc.note}` };
  }

  /** The writable layer on a disk of its own (environment-disks.ts), where the engine cannot limit it itself. */
  private async rootDisk(container: Dockerode.Container, environment: Environment): Promise<string> {
    try {
      const layer = layerDirOf((await container.inspect()).GraphDriver);
      if (!layer) throw new Error("the engine's storage driver is not overlay2");
      await ensureRootDisk(this.engine.paths.disks, environment.id, environment.diskGiB, layer);
      return `the root filesystem is limited to ${environment.diskGiB} GiB (its writable layer on an ext4 disk of its own)`;
    } catch (error) {
      return `the root filesystem is not limited: no disk of its own (${(error as Error).message.split("\n")[0]})`;
    }
  }

  /**
   * Where /home and /var/lib/docker live: each on a disk of its own, sized
   * diskGiB, where loop devices work (/home as a named volume on its disk, so
   * the image's /home is copied in the first time); otherwise named volumes,
   * and the build log says the size is not enforced. A home volume made
   * before home disks existed is kept as it is. In a Pod, the claim's
   * directories, sized by the claim.
   */
  private async prepareStorage(
    docker: Dockerode,
    environment: Environment,
    runtime: CvmRuntime,
  ): Promise<{ dockerDisk?: string; enforced: boolean; note: string }> {
    const sources = this.options.volumeSources;
    if (sources) {
      await this.ownBySourcesRoot(sources, runtime);
      // Volumes, not binds: the engine copies the image's /home in the first time (boundVolume).
      await docker.createVolume(boundVolume(homeVolumeName(environment.id), environment.id, sources.home));
      await docker.createVolume(boundVolume(dockerVolumeName(environment.id), environment.id, sources.dockerData));
      return {
        enforced: true,
        note: `/home and /var/lib/docker are on the Pod's claim, limited together to its ${environment.diskGiB} GiB`,
      };
    }
    const labelled = (name: string) => ({
      Name: name,
      Labels: { ...installationLabels(this.options.installationId), [labels.environment]: environment.id },
    });
    const homeName = homeVolumeName(environment.id);
    const disks = this.engine.paths.disks;
    const root = this.engine.root;
    const ownDisk = async (kind: "docker" | "home") => {
      if (!root) throw new Error("the engine has no remapped root");
      return (await ensureDisk(disks, environment.id, kind, environment.diskGiB, root)).disk;
    };
    const failure = (error: unknown) => (error as Error).message.split("\n")[0];
    let home: string;
    const existing = await ignoreMissing(docker.getVolume(homeName).inspect());
    if (existing && !existing.Options?.device) {
      home = `/home is volume ${homeName}, made before home disks: not limited`;
    } else {
      try {
        const disk = await ownDisk("home");
        if (!existing) await docker.createVolume({ ...labelled(homeName), ...diskVolumeOptions(disk) });
        home = `/home is limited to ${environment.diskGiB} GiB (volume ${homeName} on an ext4 disk of its own)`;
      } catch (error) {
        if (!existing) await docker.createVolume(labelled(homeName));
        home = `/home is volume ${homeName}, not limited: no disk of its own (${failure(error)})`;
      }
    }
    try {
      const disk = await ownDisk("docker");
      return {
        dockerDisk: disk.source,
        enforced: true,
        note: `/var/lib/docker is limited to ${environment.diskGiB} GiB (an ext4 disk of its own); ${home}`,
      };
    } catch (error) {
      await docker.createVolume(labelled(dockerVolumeName(environment.id)));
      return {
        enforced: false,
        note: `/var/lib/docker is volume ${dockerVolumeName(environment.id)}, not limited: no disk of its own (${failure(error)}); ${home}`,
      };
    }
  }

  /**
   * Bound directories are seen through the CVM's user namespace: owned by
   * the node's root they would be nobody's inside. The engine does this for
   * its own volumes; a bound directory's top is handed over here (only when
   * still the node root's, so a user's own layout inside is never changed).
   */
  private async ownBySourcesRoot(sources: VolumeSources, runtime: CvmRuntime): Promise<void> {
    const root = this.engine.root;
    if (runtime !== "userns" || !root) return;
    for (const dir of [sources.home, sources.dockerData]) {
      await mkdir(dir, { recursive: true });
      const info = await stat(dir);
      if (info.uid === 0) await chown(dir, root.uid, root.gid);
    }
  }

  /**
   * Starts the container (its gate holds init back), decides the entrypoint
   * from the image's own filesystem while the engine starts it, hands over
   * its cgroups, releases the gate, and waits until ready.
   */
  private async boot(
    container: Dockerode.Container,
    environment: Environment,
    runtime: CvmRuntime,
    log: (text: string) => Promise<void>,
    signal?: AbortSignal,
    alreadyStarted = false,
  ): Promise<Observation> {
    const startedAt = Date.now();
    const [init] = await Promise.all([this.initPath(container), alreadyStarted ? undefined : container.start()]);
    await log(
      init.found
        ? `entrypoint: /sbin/init found (${init.chain.join(" -> ")}); it runs as PID 1`
        : `entrypoint: no usable /sbin/init (${init.reason}); a minimal init that reaps children runs as PID 1, systemd unavailable`,
    );
    const info = await container.inspect();
    const pid = info.State.Pid;
    // A CVM claimed from a warm pool was made under the pool's name, which the engine writes back at every start.
    if (info.Config.Hostname !== environment.name) await hostnameBeforeBoot(info, environment.name);
    const note = await this.options.beforeRelease?.();
    if (note) await log(note);
    if (!init.found) {
      await releaseGate(pid, "reaper");
      await log("release: minimal init running; systemd unavailable");
      if (runtime === "userns") await this.checkGateMounts(container, pid, log);
      return { exists: true, running: true, runtime, systemd: "unavailable", failedUnits: [], docker: "absent" };
    }
    signal?.throwIfAborted();
    if (runtime === "userns") {
      const root = this.engine.root;
      if (!root) throw new CvmError("INTERNAL", "cvm's engine has no remapped root");
      const { directories } = await delegateCgroups(pid, root.uid, root.gid);
      await log(`cgroups: ${directories.length} directories handed to the CVM's root (uid ${root.uid})`);
      if (isSystemd(init)) {
        await log(`systemd: masked for the boot: ${maskedUnits.map((m) => `${m.unit} (${m.why})`).join(", ")}`);
      }
    }
    await releaseGate(pid, "init");
    await log(`release: ${init.target} is PID 1`);
    if (runtime === "userns") await this.checkGateMounts(container, pid, log);
    return this.ready(container, pid, runtime, init, log, signal, startedAt);
  }

  /** After the release: waits for systemd to finish booting (and says how the inner Docker is). */
  private async ready(
    container: Dockerode.Container,
    pid: number,
    runtime: CvmRuntime,
    init: Extract<InitPath, { found: true }>,
    log: (text: string) => Promise<void>,
    signal: AbortSignal | undefined,
    startedAt: number,
  ): Promise<Observation> {
    if (!isSystemd(init)) {
      await log(`${init.target} is not systemd: systemd unavailable`);
      return { exists: true, running: true, runtime, systemd: "unavailable", failedUnits: [], docker: "unknown" };
    }
    const timeoutSeconds = this.options.readyTimeoutSeconds ?? 180;
    if (!(await waitForSystemdBus(pid, timeoutSeconds * 1000, signal))) {
      const logs = await this.tail(container);
      throw new CvmError("INTERNAL", "systemd did not start in the CVM", { detail: logs });
    }
    const report = await untilAborted(systemdReport(container, pid, { wait: true, timeoutSeconds }), signal);
    const elapsed = ((Date.now() - startedAt) / 1000).toFixed(2);
    await log(`systemd: ${report.systemd} ${elapsed} s after start`);
    if (report.failedUnits.length > 0) await log(`systemd: failed units: ${report.failedUnits.join(", ")}`);
    await log(
      `docker: ${
        report.dockerOnDemand
          ? "its socket listens; dockerd starts on the first call (docker.socket)"
          : {
              answering: "the inner dockerd answers",
              "not-answering": "Docker is enabled but dockerd does not answer",
              absent: "not in this image (neither docker.service nor docker.socket enabled)",
              unknown: "unknown",
            }[report.docker]
      }`,
    );
    if (report.systemd !== "running" && report.systemd !== "degraded") {
      throw new CvmError("INTERNAL", `systemd did not finish booting: ${report.systemd}`, {
        detail: await this.tail(container),
      });
    }
    const { dockerOnDemand: _onDemand, ...observed } = report;
    return { exists: true, running: true, runtime, ...observed };
  }

  /**
   * What the gate set up at release: whether nested privileged containers
   * can mount sysfs, and whether the CVM has a binfmt_misc of its own. Only
   * reported: the CVM works either way.
   */
  private async checkGateMounts(container: Dockerode.Container, pid: number, log: (text: string) => Promise<void>) {
    const mounts = gateMounts(await readFile(`/proc/${pid}/mountinfo`, "utf8").catch(() => ""));
    const gateNote = (await this.tail(container)).split("\n").find((line) => line.includes("cvm-gate: sysfs"));
    await log(
      mounts.nestable
        ? "nesting: /sys is the CVM's own sysfs with a writable super block: nested privileged containers can mount sysfs"
        : `nesting: /sys stays read-only, so nested privileged containers cannot mount sysfs (${gateNote ?? "no reference sysfs"})`,
    );
    await log(`multi-arch: ${binfmtNote(mounts.binfmtMisc, release())}`);
  }

  /**
   * The entrypoint rule's answer depends only on the image, so it is asked
   * once per image id (a few archive requests) and remembered.
   */
  private async initPath(container: Dockerode.Container): Promise<InitPath> {
    const imageId = (await container.inspect()).Image;
    const known = this.initPaths.get(imageId);
    if (known) return known;
    const found = await findInitPath(new ContainerFilesystem(container));
    this.initPaths.set(imageId, found);
    return found;
  }

  private async tail(container: Dockerode.Container): Promise<string> {
    const raw = (await container.logs({ stdout: true, stderr: true, tail: 20 }).catch(() => Buffer.alloc(0))) as Buffer;
    return raw.toString("utf8").replace(/[\x00-\x08]/g, "");
  }

  /** Goes on with the container an interrupted build made, from wherever it got to. */
  private async resume(
    environment: Environment,
    info: Dockerode.ContainerInspectInfo,
    log: (text: string) => Promise<void>,
    signal: AbortSignal,
  ): Promise<Observation> {
    const runtime = (info.Config.Labels?.[labels.runtime] as CvmRuntime | undefined) ?? "userns";
    const container = await this.container(environment);
    if (!info.State.Running) {
      await this.remountDisks(environment, info);
      return this.boot(container, environment, runtime, log, signal);
    }
    const state = await gateState(info.State.Pid);
    if (state === "held" || state === "opening" || state === "starting")
      return this.boot(container, environment, runtime, log, signal, true);
    if (state === "reaper") return this.observe(environment);
    const init = await this.initPath(container);
    if (!init.found) return this.observe(environment);
    await log(`release: ${init.target} already runs as PID 1`);
    return this.ready(container, info.State.Pid, runtime, init, log, signal, Date.now());
  }

  async start(environment: Environment, context: BuildContext): Promise<Observation> {
    const info = await this.inspect(environment);
    if (!info) {
      await context.log("start: the CVM's container is gone; rebuilding it");
      return this.build(environment, context);
    }
    const runtime = (info.Config.Labels?.[labels.runtime] as CvmRuntime | undefined) ?? "userns";
    const log = (text: string) => context.log(text);
    if (info.State.Running) {
      // Still held at its gate: the supervisor that started it went away mid-build; finish the boot.
      if (!["held", "opening", "starting"].includes(await gateState(info.State.Pid))) return this.observe(environment);
      await context.enter("starting");
      return this.boot(await this.container(environment), environment, runtime, log, context.signal, true);
    }
    await context.enter("starting");
    await this.remountDisks(environment, info);
    // The engine unmounts its reference sysfs when it stops with no CVM running; the bind needs it back.
    if (runtime === "userns") {
      await ensureSysfsReference(this.engine.paths.root).catch((error: Error) =>
        log(`nesting unavailable: ${error.message}`),
      );
    }
    // Its /proc files are binds of LXCFS's, which stopped with the engine when no CVM ran.
    if (info.HostConfig.Mounts?.some((mount) => mount.Target === "/proc/meminfo")) await this.lxcfs.ensure();
    return this.boot(await this.container(environment), environment, runtime, log, context.signal);
  }

  /** A node reboot (or the engine's stop) unmounts the environment's disks; its container needs them back before it starts. */
  private async remountDisks(environment: Environment, info: Dockerode.ContainerInspectInfo): Promise<void> {
    const root = this.engine.root;
    if (!root) return;
    const layer = layerDirOf(info.GraphDriver);
    await remountDisks(this.engine.paths.disks, environment.id, environment.diskGiB, root, layer);
  }

  async stop(environment: Environment, timeoutSeconds: number): Promise<void> {
    const container = await this.container(environment);
    // StopSignal is SIGRTMIN+3: systemd shuts down cleanly; the engine kills what is left at the timeout.
    await stopContainer(container, timeoutSeconds);
  }

  async remove(environment: Environment, options: { keepHome: boolean; keepDockerData?: boolean }): Promise<void> {
    const docker = await this.engine.ensure();
    const info = await this.inspect(environment);
    if (info) await this.removeContainer(docker, info.Id);
    const volumes = [
      ...(options.keepDockerData ? [] : [dockerVolumeName(environment.id)]),
      ...(options.keepHome ? [] : [homeVolumeName(environment.id)]),
    ];
    for (const volume of volumes) {
      if (!(await removeDiskVolume(docker, volume))) {
        this.logger.warn({ volume }, "the engine counts a mount of this volume it lost at a restart; its record stays");
      }
    }
    await releaseDisk(this.engine.paths.disks, environment.id, "docker", options.keepDockerData ?? false);
    await releaseDisk(this.engine.paths.disks, environment.id, "home", options.keepHome);
  }

  private async removeContainer(docker: Dockerode, id: string): Promise<void> {
    const container = docker.getContainer(id);
    const info = await ignoreMissing(container.inspect());
    const environmentId = info?.Config.Labels?.[labels.environment];
    if (info && environmentId) {
      // Its writable layer's disk comes off the layer directory first, or the engine cannot remove it.
      await stopContainer(container, 0);
      await releaseRootDisk(this.engine.paths.disks, environmentId, layerDirOf(info.GraphDriver));
    }
    await removeContainer(container, { volumes: false });
    const left = await removeContainerCgroups(id);
    if (left.length > 0) this.logger.warn({ container: id, left }, "cgroup directories left after removal");
  }

  async discard(environment: Environment, options: { keepDockerData: boolean }): Promise<void> {
    await this.remove(environment, { keepHome: true, keepDockerData: options.keepDockerData });
  }

  async observe(environment: Environment): Promise<Observation> {
    const info = await this.inspect(environment);
    if (!info) return absent(environment.runtime);
    const runtime = (info.Config.Labels?.[labels.runtime] as CvmRuntime | undefined) ?? "userns";
    if (!info.State.Running) {
      const reason = info.State.OOMKilled ? "killed: out of memory" : `exited with code ${info.State.ExitCode}`;
      return { exists: true, running: false, runtime, systemd: "unknown", failedUnits: [], docker: "unknown", reason };
    }
    const pid = info.State.Pid;
    const state = await gateState(pid);
    if (state === "held" || state === "opening" || state === "starting") {
      return { exists: true, running: true, runtime, systemd: "starting", failedUnits: [], docker: "unknown" };
    }
    if (state === "reaper") {
      return { exists: true, running: true, runtime, systemd: "unavailable", failedUnits: [], docker: "absent" };
    }
    const container = await this.container(environment);
    const report = await systemdReport(container, pid, { wait: false, timeoutSeconds: 5 }).catch(() => undefined);
    if (!report)
      return { exists: true, running: true, runtime, systemd: "unknown", failedUnits: [], docker: "unknown" };
    const { dockerOnDemand: _onDemand, ...observed } = report;
    return { exists: true, running: true, runtime, ...observed };
  }

  async exec(environment: Environment, options: ExecOptions): Promise<ExecSession> {
    const docker = await this.engine.ensure();
    const info = await this.inspect(environment);
    if (!info?.State.Running) {
      throw new CvmError("CONFLICT", `Environment ${environment.name} is not running`);
    }
    // Root inside the CVM by default; cvm's engine runs on this node.
    return startExec(docker, docker.getContainer(info.Id), options, { user: "0", engineIsLocal: true });
  }

  /** The node's pid of the CVM's init, whose namespaces are entered to reach inside (src/netns). */
  async pid(environment: Environment): Promise<number> {
    const info = await this.inspect(environment);
    if (!info?.State.Running || !info.State.Pid) {
      throw new CvmError("CONFLICT", `Environment ${environment.name} is not running`);
    }
    return info.State.Pid;
  }

  /** Every CVM with cvm's labels but a warm pool's members, which belong to no environment yet. */
  async listWorkloads(): Promise<LabeledWorkload[]> {
    const [workloads, members] = await Promise.all([
      listLabeledWorkloads(await this.engine.ensure(), this.options.installationId),
      this.pool.memberIds(),
    ]);
    return workloads.filter((workload) => !members.has(workload.environmentId));
  }

  async addresses(): Promise<RunningAddress[]> {
    return listRunningAddresses(await this.engine.ensure(), this.options.installationId);
  }

  async bridge(): Promise<string | undefined> {
    return this.engine.network?.bridge;
  }

  engineClient(): Dockerode {
    return this.engine.docker;
  }

  async removeWorkload(ref: string): Promise<void> {
    const docker = await this.engine.ensure();
    const info = await ignoreMissing(docker.getContainer(ref).inspect());
    if (!info || !isInstallations(info.Config.Labels, this.options.installationId)) return;
    await this.removeContainer(docker, info.Id);
    // The environment is gone from the store: nothing of it should stay.
    const environmentId = info.Config.Labels?.[labels.environment];
    if (environmentId) {
      for (const volume of [dockerVolumeName(environmentId), homeVolumeName(environmentId)]) {
        await ignoreMissing(docker.getVolume(volume).remove());
      }
      for (const kind of ["docker", "home"] as const)
        await releaseDisk(this.engine.paths.disks, environmentId, kind, false);
    }
  }

  async close(): Promise<void> {
    await sparesSettled();
    // CVMs outlive a stopping engine (live restore) and keep reading their /proc through lxcfs.
    const running = this.lxcfs.running()
      ? await this.engine
          .ensure()
          .then((docker) => docker.listContainers())
          .catch(() => [])
      : [];
    await this.engine.close();
    if (running.length === 0) await this.lxcfs.close();
  }
}
