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

import { chown, mkdir, stat } from "node:fs/promises";
import type { Socket } from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type Dockerode from "dockerode";
import type { Logger } from "pino";
import type { Environment } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import { type CvmRuntime, chooseRuntime } from "../core/isolation-runtime.js";
import type { ListeningPort } from "../core/listening-ports.js";
import type {
  BuildContext,
  ExecOptions,
  ExecSession,
  LabeledWorkload,
  Observation,
  Provider,
  UnixListener,
  UnixSocketSpec,
} from "../core/provider.js";
import {
  dockerClient,
  ensureImage,
  homeVolumeName,
  ignoreMissing,
  labels,
  listLabeledWorkloads,
  startExec,
} from "../docker/index.js";
import { NamespaceBridge } from "../netns/index.js";
import { ensureApparmorProfile } from "./apparmor.js";
import { delegateCgroups, removeContainerCgroups } from "./cgroup-delegation.js";
import { containerName, cvmContainerRequest, dockerVolumeName, type VolumeSources } from "./cvm-container.js";
import { diskLimit } from "./disk-limit.js";
import { dockerDiskPaths, ensureDockerDisk, releaseDockerDisk } from "./docker-disk.js";
import { CvmEngine } from "./engine.js";
import { ContainerFilesystem } from "./image-filesystem.js";
import { findInitPath, type InitPath } from "./init-path.js";
import { Lxcfs, withLxcfs } from "./lxcfs.js";
import { systemdReport, waitForSystemdBus } from "./readiness.js";
import { cvmSeccompProfile } from "./seccomp.js";
import { ensureGateBinary, gateState, releaseGate } from "./start-gate.js";

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
}

export type CvmSupervisor = Omit<Provider, "name">;

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
  private readonly bridge: NamespaceBridge;
  private readonly lxcfs: Lxcfs;
  /** Built once per process: concurrent builds share the one compile. */
  private gateBinary?: Promise<string>;

  constructor(private readonly options: CvmSupervisorOptions) {
    this.logger = options.logger.child({ component: "cvm-supervisor" });
    this.engine = new CvmEngine({ dataDir: options.dataDir, logger: options.logger });
    this.hostDocker = options.hostDockerHost ? dockerClient(options.hostDockerHost) : undefined;
    this.bridge = new NamespaceBridge(join(options.dataDir, "bin"));
    this.lxcfs = new Lxcfs(join(options.dataDir, "lxcfs"), this.logger);
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
    const sources = {
      registry: "pulled from its registry",
      "node-engine": "copied from the node's engine",
      engine: "already in cvm's engine",
    };
    await log(`pull: ${environment.image} ${sources[source]} in ${((Date.now() - pulledAt) / 1000).toFixed(1)} s`);
    context.signal.throwIfAborted();

    await context.enter("creating");
    const { container, createdAt } = await this.create(docker, environment, runtime, log);
    await context.enter("starting");
    const observation = await this.boot(container, runtime, log, context.signal);
    await log(`ready ${((Date.now() - createdAt) / 1000).toFixed(2)} s after create`);
    await log(`build done in ${((Date.now() - begun) / 1000).toFixed(2)} s`);
    return observation;
  }

  private async create(
    docker: Dockerode,
    environment: Environment,
    runtime: CvmRuntime,
    log: (text: string) => Promise<void>,
  ): Promise<{ container: Dockerode.Container; createdAt: number }> {
    const name = containerName(environment.id);
    // A rebuild starts from a fresh container; its volumes stay.
    await ignoreMissing(docker.getContainer(name).remove({ force: true }));
    const storage = await this.prepareStorage(docker, environment, runtime);
    this.gateBinary ??= ensureGateBinary(this.engine.paths.bin).catch((error) => {
      this.gateBinary = undefined;
      throw error;
    });
    const gateBinary = await this.gateBinary;
    const apparmor = await ensureApparmorProfile();
    await log(`security: ${apparmor.note}`);
    if (runtime === "userns") {
      await log("security: seccomp = Docker's default profile + keyctl, pivot_root (for nested containers)");
      await log("security: not privileged; capabilities added: SYS_ADMIN, NET_ADMIN (inside its user namespace only)");
    }
    const rootfs = await diskLimit(this.engine.paths.dataRoot, environment.diskGiB);
    await log(`${storage.enforced ? "disk limit" : "disk limit not enforced"}: ${storage.note}; ${rootfs.note}`);
    const request = cvmContainerRequest({
      environment,
      image: environment.image,
      runtime,
      gateBinary,
      seccomp: runtime === "userns" ? JSON.stringify(cvmSeccompProfile()) : undefined,
      apparmor: apparmor.profile,
      storageOpt: rootfs.storageOpt,
      volumeSources: this.options.volumeSources,
      dockerDisk: storage.dockerDisk,
    });
    const proc = await this.lxcfs.ensure();
    await log(`/proc: ${proc.note}`);
    const createdAt = Date.now();
    const container = await docker.createContainer(withLxcfs(request, proc.mountpoint));
    await log(`create: ${name} with ${environment.cpu} CPUs, ${environment.memoryGiB} GiB memory`);
    return { container, createdAt };
  }

  /**
   * Where /home and /var/lib/docker live. /home: a named volume (the image's
   * /home is copied in the first time). /var/lib/docker: a disk of its own,
   * sized diskGiB, where loop devices work; otherwise a named volume, and the
   * build log says the size is not enforced. In a Pod, the claim's directories.
   */
  private async prepareStorage(
    docker: Dockerode,
    environment: Environment,
    runtime: CvmRuntime,
  ): Promise<{ dockerDisk?: string; enforced: boolean; note: string }> {
    const sources = this.options.volumeSources;
    if (sources) {
      await this.ownBySourcesRoot(sources, runtime);
      return { enforced: false, note: "/home and /var/lib/docker are on the Pod's claim (sized by the claim)" };
    }
    const labelled = (name: string) => ({
      Name: name,
      Labels: { [labels.managed]: "true", [labels.environment]: environment.id },
    });
    await docker.createVolume(labelled(homeVolumeName(environment.id)));
    const home = `/home is volume ${homeVolumeName(environment.id)} (Docker's local volumes have no size)`;
    const root = this.engine.root;
    try {
      if (!root) throw new Error("the engine has no remapped root");
      const { disk } = await ensureDockerDisk(this.engine.paths.disks, environment.id, environment.diskGiB, root);
      return {
        dockerDisk: disk.mountPoint,
        enforced: true,
        note: `/var/lib/docker is limited to ${environment.diskGiB} GiB (an ext4 disk of its own); ${home}`,
      };
    } catch (error) {
      await docker.createVolume(labelled(dockerVolumeName(environment.id)));
      return {
        enforced: false,
        note: `/var/lib/docker is volume ${dockerVolumeName(environment.id)}, not limited: no disk of its own (${(error as Error).message.split("\n")[0]}); ${home}`,
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
    if (!init.found) {
      await releaseGate(pid, "reaper");
      await log("release: minimal init running; systemd unavailable");
      return { exists: true, running: true, runtime, systemd: "unavailable", failedUnits: [], docker: "absent" };
    }
    signal?.throwIfAborted();
    if (runtime === "userns") {
      const root = this.engine.root;
      if (!root) throw new CvmError("INTERNAL", "cvm's engine has no remapped root");
      const { directories } = await delegateCgroups(pid, root.uid, root.gid);
      await log(`cgroups: ${directories.length} directories handed to the CVM's root (uid ${root.uid})`);
    }
    await releaseGate(pid, "init");
    await log(`release: ${init.target} is PID 1`);
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
      `docker: ${{ answering: "the inner dockerd answers", "not-answering": "docker.service is enabled but dockerd does not answer", absent: "not in this image (docker.service not enabled)", unknown: "unknown" }[report.docker]}`,
    );
    if (report.systemd !== "running" && report.systemd !== "degraded") {
      throw new CvmError("INTERNAL", `systemd did not finish booting: ${report.systemd}`, {
        detail: await this.tail(container),
      });
    }
    return { exists: true, running: true, runtime, ...report };
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
      if (!["held", "starting"].includes(await gateState(info.State.Pid))) return this.observe(environment);
      await context.enter("starting");
      return this.boot(await this.container(environment), runtime, log, context.signal, true);
    }
    await context.enter("starting");
    await this.remountDockerDisk(environment);
    return this.boot(await this.container(environment), runtime, log, context.signal);
  }

  /** A node reboot unmounts the inner Docker's disk; its container's bind needs it back before start. */
  private async remountDockerDisk(environment: Environment): Promise<void> {
    const root = this.engine.root;
    const { image } = dockerDiskPaths(this.engine.paths.disks, environment.id);
    const present = await stat(image).then(
      () => true,
      () => false,
    );
    if (present && root) await ensureDockerDisk(this.engine.paths.disks, environment.id, environment.diskGiB, root);
  }

  async stop(environment: Environment, timeoutSeconds: number): Promise<void> {
    const container = await this.container(environment);
    // StopSignal is SIGRTMIN+3: systemd shuts down cleanly; the engine kills what is left at the timeout.
    await ignoreMissing(container.stop({ t: timeoutSeconds }));
  }

  async remove(environment: Environment, options: { keepHome: boolean; keepDockerData?: boolean }): Promise<void> {
    const docker = await this.engine.ensure();
    const info = await this.inspect(environment);
    if (info) await this.removeContainer(docker, info.Id);
    const volumes = [
      ...(options.keepDockerData ? [] : [dockerVolumeName(environment.id)]),
      ...(options.keepHome ? [] : [homeVolumeName(environment.id)]),
    ];
    for (const volume of volumes) await ignoreMissing(docker.getVolume(volume).remove());
    await releaseDockerDisk(this.engine.paths.disks, environment.id, options.keepDockerData ?? false);
  }

  private async removeContainer(docker: Dockerode, id: string): Promise<void> {
    await ignoreMissing(docker.getContainer(id).remove({ force: true }));
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
    if (state === "held" || state === "starting") {
      return { exists: true, running: true, runtime, systemd: "starting", failedUnits: [], docker: "unknown" };
    }
    if (state === "reaper") {
      return { exists: true, running: true, runtime, systemd: "unavailable", failedUnits: [], docker: "absent" };
    }
    const container = await this.container(environment);
    const report = await systemdReport(container, pid, { wait: false, timeoutSeconds: 5 }).catch(() => undefined);
    if (!report)
      return { exists: true, running: true, runtime, systemd: "unknown", failedUnits: [], docker: "unknown" };
    return { exists: true, running: true, runtime, ...report };
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

  /** The node's pid of the CVM's init, whose namespaces are entered to reach inside. */
  private async pid(environment: Environment): Promise<number> {
    const info = await this.inspect(environment);
    if (!info?.State.Running || !info.State.Pid) {
      throw new CvmError("CONFLICT", `Environment ${environment.name} is not running`);
    }
    return info.State.Pid;
  }

  async dial(environment: Environment, port: number): Promise<Duplex> {
    return this.bridge.dial(await this.pid(environment), port);
  }

  async spliceSocket(
    environment: Environment,
    port: number,
    client: Socket,
    connected: () => Promise<void> | void,
  ): Promise<{ finished: Promise<void> }> {
    return this.bridge.splice(await this.pid(environment), port, client, connected);
  }

  async listeningPorts(environment: Environment): Promise<ListeningPort[]> {
    return this.bridge.listeningPorts(await this.pid(environment));
  }

  async listenUnix(
    environment: Environment,
    spec: UnixSocketSpec,
    onConnection: (connection: Duplex) => void,
  ): Promise<UnixListener> {
    return this.bridge.listen(await this.pid(environment), spec, onConnection);
  }

  async listWorkloads(): Promise<LabeledWorkload[]> {
    return listLabeledWorkloads(await this.engine.ensure());
  }

  async removeWorkload(ref: string): Promise<void> {
    const docker = await this.engine.ensure();
    const info = await ignoreMissing(docker.getContainer(ref).inspect());
    if (!info) return;
    await this.removeContainer(docker, info.Id);
    // The environment is gone from the store: nothing of it should stay.
    const environmentId = info.Config.Labels?.[labels.environment];
    if (environmentId) {
      for (const volume of [dockerVolumeName(environmentId), homeVolumeName(environmentId)]) {
        await ignoreMissing(docker.getVolume(volume).remove());
      }
      await releaseDockerDisk(this.engine.paths.disks, environmentId, false);
    }
  }

  async close(): Promise<void> {
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
