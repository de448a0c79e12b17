/**
 * The kubernetes provider: one Pod per environment in the installation's
 * namespace, beside the environment's home claim and, when it has registry
 * credentials, its Secret; the supervisor reports with its Pod's own projected
 * service-account token (report-token.ts). A CVM's Pod runs
 * `cvm supervisor`, the same code that supervises CVMs on one machine; a
 * standard environment's Pod runs the image itself.
 *
 * One informer watches every cvm Pod (pod-watch.ts); builds wait on its
 * events, observations read its cache, and a restarted server finds in it the
 * Pods it left behind. The supervisor's reports (log lines, states, systemd's
 * and Docker's status) arrive through acceptSupervisorReport.
 */

import type { KeyObject } from "node:crypto";
import type { Duplex } from "node:stream";
import {
  CoreV1Api,
  type KubeConfig,
  OpenidApi,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Environment, EnvironmentState, RegistryCredentials } from "../../core/environment.js";
import { CvmError } from "../../core/errors.js";
import { type ListeningPort, parseListeningPorts } from "../../core/listening-ports.js";
import type {
  BuildContext,
  ExecOptions,
  ExecSession,
  LabeledWorkload,
  Observation,
  Provider,
  SupervisorReport,
  UnixListener,
} from "../../core/provider.js";
import type { InfrastructureSettings } from "../../core/settings.js";
import {
  apiClient,
  apiMessage,
  clusterRefusal,
  defaultNamespace,
  dropIdleConnections,
  isConflict,
  isNotFound,
  loadKubeConfig,
} from "../../kubernetes/index.js";
import { podDefaults } from "../../supervisor/pod-contract.js";
import { dialByExec } from "../exec-dial.js";
import type { ProviderOptions } from "../index.js";
import { readInside } from "../read-inside.js";
import { startExec } from "./exec-session.js";
import {
  annotations,
  environmentContainer,
  installationSelector,
  labels,
  objectNames,
  supervisorContainer,
} from "./names.js";
import { environmentPodSpec, environmentSecretSpec, homeClaimSpec, type PodOptions } from "./pod-spec.js";
import { podView } from "./pod-state.js";
import { PodWatch } from "./pod-watch.js";
import { keysFromJwks, verifyReportToken } from "./report-token.js";
import { RequestLimiter } from "./request-limiter.js";

export { annotations, labels, objectNames } from "./names.js";
export {
  environmentPodSpec,
  environmentSecretSpec,
  homeClaimSpec,
  standardPodSpec,
  supervisorPodSpec,
} from "./pod-spec.js";
export { podView } from "./pod-state.js";

export interface KubernetesProviderOptions extends ProviderOptions {
  /** The StorageClass of home claims; the cluster's default when absent. */
  storageClass?: string;
  /** The image CVM Pods run (images/supervisor). */
  supervisorImage?: string;
  /** How long a Pod may take to become ready before its build fails. */
  buildTimeoutSeconds?: number;
  /** How long stop and delete wait for a Pod to go before removing it by force. */
  stopTimeoutSeconds?: number;
  /** Registries (host:port) CVMs' images may come from over plain HTTP; CVM_INSECURE_REGISTRIES (comma-separated) otherwise. */
  insecureRegistries?: string[];
}

/**
 * What every CVM Pod of this installation is given, from the provider's
 * options or else cvm server's environment (the chart sets CVM_SUPERVISOR_IMAGE,
 * CVM_SUPERVISOR_REPORT_URL, CVM_INSECURE_REGISTRIES): the doctor's trial Pod
 * takes the same.
 */
export function installationPodOptions(
  options: Pick<KubernetesProviderOptions, "supervisorImage" | "serverUrl" | "insecureRegistries">,
): Pick<PodOptions, "supervisorImage" | "serverUrl" | "insecureRegistries"> {
  return {
    supervisorImage: options.supervisorImage ?? process.env.CVM_SUPERVISOR_IMAGE,
    serverUrl: process.env.CVM_SUPERVISOR_REPORT_URL ?? options.serverUrl,
    insecureRegistries:
      options.insecureRegistries ?? (process.env.CVM_INSECURE_REGISTRIES ?? "").split(",").filter(Boolean),
  };
}

/** What lets a waiting build finish goes first when many queue (500 creates at once). */
const urgentRequests = new Set(["createNamespacedPod", "deleteNamespacedPod", "readNamespacedSecret"]);

const buildStates = ["pulling", "creating", "starting"] as const;
type BuildStage = (typeof buildStates)[number];

export async function createKubernetesProvider(options: KubernetesProviderOptions): Promise<KubernetesProvider> {
  const provider = new KubernetesProvider(loadKubeConfig(options.kubeconfig), defaultNamespace(options), options);
  await provider.connect();
  return provider;
}

/** One build in progress in this process: where the supervisor's reports go while it waits. */
interface LiveBuild {
  buildId?: string;
  context: BuildContext;
  reach(state: BuildStage): void;
}

export class KubernetesProvider implements Provider {
  readonly name = "kubernetes" as const;
  readonly resumesBuilds = true;
  private readonly core: CoreV1Api;
  private readonly watch: PodWatch;
  private readonly logger: Logger;
  private readonly openid: OpenidApi;
  private jwks?: { keys: Map<string | undefined, KeyObject>; readAt: number };
  private readonly reports = new Map<string, SupervisorReport>();
  private readonly live = new Map<string, LiveBuild>();
  private readonly limiter: RequestLimiter;

  constructor(
    readonly config: KubeConfig,
    readonly namespace: string,
    private readonly options: KubernetesProviderOptions,
  ) {
    this.limiter = new RequestLimiter(32, () => dropIdleConnections(config));
    this.core = this.limited(apiClient(config, CoreV1Api));
    this.openid = apiClient(config, OpenidApi);
    this.logger = options.logger.child({ provider: "kubernetes", namespace });
    this.watch = new PodWatch(config, namespace, this.logger, installationSelector(options.installationId));
  }

  /** The API client, every call of which waits its turn in the limiter. */
  private limited(api: CoreV1Api): CoreV1Api {
    return new Proxy(api, {
      get: (target, key, receiver) => {
        const value = Reflect.get(target, key, receiver);
        if (typeof value !== "function") return value;
        // Everything but a create may be sent again when its connection broke.
        const repeatable = !String(key).startsWith("create");
        return (...args: unknown[]) =>
          this.limiter.run(() => value.apply(target, args), urgentRequests.has(String(key)), repeatable);
      },
    });
  }

  /** Lists and starts watching the namespace's cvm Pods. */
  async connect(): Promise<void> {
    try {
      await this.watch.start();
    } catch (error) {
      throw new CvmError("UNAVAILABLE", `Cannot watch Pods in namespace ${this.namespace}: ${apiMessage(error)}`, {
        cause: error,
      });
    }
  }

  /** Cuts the Pod watch's connection as a network fault would (tests); it resumes by itself. */
  interruptWatch(): void {
    this.watch.interrupt();
  }

  /** How many times the Pod watch dropped and resumed. */
  get watchRestarts(): number {
    return this.watch.restarts;
  }

  /** How long a Pod gets to stop cleanly: its grace period, and how long stop and delete wait for it. */
  private get stopTimeoutSeconds(): number {
    return this.options.stopTimeoutSeconds ?? podDefaults.stopTimeoutSeconds;
  }

  private podOptions(discardDockerData: boolean, registrySecret: boolean): PodOptions {
    return {
      ...installationPodOptions(this.options),
      registrySecret,
      stopTimeoutSeconds: this.stopTimeoutSeconds,
      discardDockerData,
    };
  }

  async build(environment: Environment, context: BuildContext): Promise<Observation> {
    return this.run(environment, context);
  }

  async start(environment: Environment, context: BuildContext): Promise<Observation> {
    return this.run(environment, context);
  }

  /**
   * Makes sure the claim, the Secret and a Pod of this build exist, adopting
   * a Pod of the same build left by an earlier server, then waits for the Pod
   * (and the supervisor's reports) to say running or failed.
   */
  private async run(environment: Environment, context: BuildContext): Promise<Observation> {
    const names = objectNames(environment.id);
    const entered = new Set<EnvironmentState>();
    // Log lines and state moves go out in order, one at a time; the first failure (the user stopped it) ends the build.
    let failure: unknown;
    let queue = Promise.resolve();
    const enqueue = (work: () => Promise<void>) => {
      queue = queue.then(work).catch((error) => {
        failure ??= error;
      });
    };
    const reach = (state: BuildStage) => {
      const upTo = buildStates.slice(0, buildStates.indexOf(state) + 1);
      for (const step of upTo) {
        if (entered.has(step)) continue;
        entered.add(step);
        enqueue(() => context.enter(step));
      }
    };
    const log = (text: string) => enqueue(() => context.log(text));
    this.live.set(environment.id, { buildId: environment.buildId, context, reach });
    try {
      const [registrySecret, discardDockerData] = await Promise.all([
        this.ensureSecret(environment, context.credentials),
        this.ensureClaim(environment),
      ]);
      context.signal.throwIfAborted();

      const existing = this.watch.get(environment.id);
      const sameBuild = existing?.metadata?.labels?.[labels.build] === environment.buildId;
      if (existing && sameBuild && !existing.metadata?.deletionTimestamp) {
        log(`adopting Pod ${names.pod} of this build (found on start-up)`);
      } else {
        if (existing) {
          log(`removing the previous Pod ${existing.metadata?.name}`);
          await this.deletePodAndWait(environment.id, 0);
        }
        // Reports of an earlier Pod say nothing about this one.
        this.reports.delete(environment.id);
        reach("pulling");
        await this.createPod(environment, context.settings, { discard: discardDockerData, registrySecret });
        log(`created Pod ${names.pod} in namespace ${this.namespace}`);
      }

      const timeoutSeconds = this.options.buildTimeoutSeconds ?? 1200;
      const signal = AbortSignal.any([context.signal, AbortSignal.timeout(timeoutSeconds * 1000)]);
      let seen = false;
      let lastReason: string | undefined;
      let started = false;
      try {
        await this.watch.until(
          environment.id,
          (pod) => {
            const view = podView(pod);
            const report = this.reports.get(environment.id);
            if (pod) seen = true;
            if (view.reason && view.reason !== lastReason) {
              lastReason = view.reason;
              log(view.reason);
            }
            if (report?.state === "failed") throw new CvmError("UNAVAILABLE", report.reason ?? "the supervisor failed");
            switch (view.stage) {
              case "absent":
                if (seen) throw new CvmError("UNAVAILABLE", `the Pod ${names.pod} was deleted`);
                return undefined;
              case "terminating":
                throw new CvmError("UNAVAILABLE", `the Pod ${names.pod} is being deleted`);
              case "failed":
                throw new CvmError("UNAVAILABLE", view.reason ?? "the Pod failed");
              case "pending":
                return undefined;
              case "starting":
                if (!started) {
                  started = true;
                  log(`${environment.cvm ? "supervisor" : "container"} started on node ${view.node}`);
                }
                reach(environment.cvm ? "creating" : "starting");
                return report?.state === "running" ? true : undefined;
              case "running":
                reach("starting");
                return true;
            }
          },
          signal,
        );
      } catch (error) {
        if (context.signal.aborted) throw context.signal.reason;
        // A failed build leaves no Pod (one backing off an image pull would hold its node's
        // resources); the claim and the Secret stay with the environment until it is deleted.
        await this.deletePodAndWait(environment.id, 0).catch((cleanup) =>
          this.logger.warn({ err: cleanup, pod: names.pod }, "could not remove the failed build's Pod"),
        );
        if (signal.aborted) {
          throw new CvmError(
            "UNAVAILABLE",
            `the Pod did not become ready within ${timeoutSeconds} s${lastReason ? ` (${lastReason})` : ""}`,
          );
        }
        throw error;
      }
      log(`Pod ${names.pod} is ready`);
      await queue;
      if (failure) throw failure;
      return this.observation(environment, this.watch.get(environment.id));
    } finally {
      await queue;
      if (this.live.get(environment.id)?.context === context) this.live.delete(environment.id);
    }
  }

  private async createPod(
    environment: Environment,
    settings: InfrastructureSettings,
    { discard, registrySecret }: { discard: boolean; registrySecret: boolean },
  ) {
    const pod = environmentPodSpec(this.labeled(environment), settings, this.podOptions(discard, registrySecret));
    try {
      await this.core.createNamespacedPod({ namespace: this.namespace, body: pod });
    } catch (error) {
      throw clusterRefusal(`the environment's Pod`, error);
    }
    if (discard) {
      const claim = objectNames(environment.id).claim;
      await this.core
        .patchNamespacedPersistentVolumeClaim(
          {
            name: claim,
            namespace: this.namespace,
            body: [{ op: "remove", path: `/metadata/annotations/${annotations.discardDockerData.replace("/", "~1")}` }],
          },
          jsonPatch,
        )
        .catch((error) => this.logger.warn({ err: error, claim }, "could not clear the discard mark"));
    }
  }

  /**
   * The Secret with the environment's registry credentials, only when it has
   * some (reports authenticate with the Pod's own projected token); says
   * whether the Pod has one to mount.
   */
  private async ensureSecret(environment: Environment, credentials: RegistryCredentials | undefined): Promise<boolean> {
    if (!credentials) return false;
    const name = objectNames(environment.id).secret;
    const body = environmentSecretSpec(this.labeled(environment), credentials);
    try {
      await this.core.createNamespacedSecret({ namespace: this.namespace, body });
    } catch (error) {
      if (!isConflict(error)) throw clusterRefusal(`the environment's Secret`, error);
      const existing = await this.core.readNamespacedSecret({ name, namespace: this.namespace });
      await this.core.replaceNamespacedSecret({
        name,
        namespace: this.namespace,
        body: { ...body, metadata: { ...existing.metadata } },
      });
    }
    return true;
  }

  /** Creates the home claim unless it exists; says whether a rebuild asked to discard the inner Docker's data. */
  private async ensureClaim(environment: Environment): Promise<boolean> {
    const storageClass = this.options.storageClass ?? process.env.CVM_STORAGE_CLASS;
    try {
      await this.core.createNamespacedPersistentVolumeClaim({
        namespace: this.namespace,
        body: homeClaimSpec(this.labeled(environment), storageClass || undefined),
      });
      return false;
    } catch (error) {
      if (!isConflict(error)) throw clusterRefusal(`the environment's home claim`, error);
      const claim = await this.core.readNamespacedPersistentVolumeClaim({
        name: objectNames(environment.id).claim,
        namespace: this.namespace,
      });
      return claim.metadata?.annotations?.[annotations.discardDockerData] === "true";
    }
  }

  /** Deletes the environment's Pod (if any) and waits until the watch sees it gone; forces it after the grace period. */
  private async deletePodAndWait(environmentId: string, graceSeconds: number): Promise<void> {
    const pod = this.watch.get(environmentId);
    const name = pod?.metadata?.name ?? objectNames(environmentId).pod;
    const uid = pod?.metadata?.uid;
    const gone = (current: V1Pod | undefined) =>
      !current || (uid && current.metadata?.uid !== uid) ? true : undefined;
    const remove = async (grace: number) => {
      try {
        await this.core.deleteNamespacedPod({ name, namespace: this.namespace, gracePeriodSeconds: grace });
      } catch (error) {
        if (!isNotFound(error)) throw clusterRefusal(`deleting Pod ${name}`, error);
      }
    };
    await remove(graceSeconds);
    if (!pod) return;
    try {
      await this.watch.until(environmentId, gone, AbortSignal.timeout((graceSeconds + 30) * 1000));
    } catch {
      this.logger.warn({ pod: name }, "pod outlived its grace period; removing it by force");
      await remove(0);
      await this.watch.until(environmentId, gone, AbortSignal.timeout(30_000));
    }
  }

  async stop(environment: Environment, timeoutSeconds: number): Promise<void> {
    this.reports.delete(environment.id);
    await this.deletePodAndWait(environment.id, timeoutSeconds);
  }

  async remove(environment: Environment, options: { keepHome: boolean; keepDockerData?: boolean }): Promise<void> {
    const names = objectNames(environment.id);
    await this.deletePodAndWait(environment.id, this.stopTimeoutSeconds);
    await this.deleteIgnoringMissing(`Secret ${names.secret}`, () =>
      this.core.deleteNamespacedSecret({ name: names.secret, namespace: this.namespace }),
    );
    if (!options.keepHome) {
      await this.deleteIgnoringMissing(`claim ${names.claim}`, () =>
        this.core.deleteNamespacedPersistentVolumeClaim({ name: names.claim, namespace: this.namespace }),
      );
    }
    this.reports.delete(environment.id);
  }

  async discard(environment: Environment, options: { keepDockerData: boolean }): Promise<void> {
    await this.deletePodAndWait(environment.id, this.stopTimeoutSeconds);
    this.reports.delete(environment.id);
    if (options.keepDockerData) return;
    // One claim holds home and the inner Docker's data: the next supervisor empties the latter.
    const name = objectNames(environment.id).claim;
    try {
      await this.core.patchNamespacedPersistentVolumeClaim(
        {
          name,
          namespace: this.namespace,
          body: { metadata: { annotations: { [annotations.discardDockerData]: "true" } } },
        },
        mergePatch,
      );
    } catch (error) {
      if (!isNotFound(error)) throw clusterRefusal(`marking claim ${name}`, error);
    }
  }

  private async deleteIgnoringMissing(what: string, work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (error) {
      if (!isNotFound(error)) throw clusterRefusal(`deleting ${what}`, error);
    }
  }

  async observe(environment: Environment): Promise<Observation> {
    return this.observation(environment, this.watch.get(environment.id));
  }

  private observation(environment: Environment, pod: V1Pod | undefined): Observation {
    const view = podView(pod);
    const report = this.reports.get(environment.id);
    const reported = report?.observation ?? {};
    const runtime = environment.cvm ? (reported.runtime ?? environment.runtime) : "none";
    // The supervisor says running before the kubelet's next readiness probe does.
    const running = view.stage === "running" || (view.stage === "starting" && report?.state === "running");
    return {
      exists: view.stage !== "absent",
      running,
      runtime,
      systemd: reported.systemd ?? "unknown",
      failedUnits: reported.failedUnits ?? [],
      docker: reported.docker ?? "unknown",
      ...(running ? {} : { reason: view.reason ?? `the Pod is ${view.stage}` }),
    };
  }

  async exec(environment: Environment, options: ExecOptions): Promise<ExecSession> {
    const pod = this.watch.get(environment.id);
    // Running as observe() says it: Ready, or started and reported running by its supervisor before the next probe.
    const stage = podView(pod).stage;
    const reported = this.reports.get(environment.id)?.state === "running";
    if (!(stage === "running" || (stage === "starting" && reported)) || !pod?.metadata?.name) {
      throw new CvmError("CONFLICT", `The environment's Pod is not running`);
    }
    // A CVM's shell runs in the inner container, through the supervisor that owns it.
    const size = options.cols && options.rows ? ["--cols", String(options.cols), "--rows", String(options.rows)] : [];
    const command = environment.cvm
      ? ["cvm", "supervisor", "exec", "--framed", ...(options.tty ? ["--tty", ...size] : []), "--", ...options.command]
      : options.command;
    return startExec(this.config, {
      namespace: this.namespace,
      pod: pod.metadata.name,
      container: environment.cvm ? supervisorContainer : environmentContainer,
      command,
      tty: options.tty,
      cols: options.cols,
      rows: options.rows,
      framed: environment.cvm,
    });
  }

  async listeningPorts(environment: Environment): Promise<ListeningPort[]> {
    return parseListeningPorts(
      await readInside((e, o) => this.exec(e, o), environment, ["/proc/net/tcp", "/proc/net/tcp6"]),
    );
  }

  /** The Pod runs on another node, whose namespaces this one cannot enter: a relay inside, through exec. */
  async dial(environment: Environment, port: number): Promise<Duplex> {
    return dialByExec((e, o) => this.exec(e, o), environment, port);
  }

  async listenUnix(): Promise<UnixListener> {
    throw new CvmError("UNAVAILABLE", "A socket inside the environment is not yet available on Kubernetes");
  }

  async listWorkloads(): Promise<LabeledWorkload[]> {
    return this.watch.all().flatMap((pod) => {
      const environmentId = pod.metadata?.labels?.[labels.environment];
      if (!environmentId || !pod.metadata?.name) return [];
      return [{ environmentId, ref: pod.metadata.name, running: podView(pod).stage === "running" }];
    });
  }

  /** The environment as the object specs take it: with the installation every object is labeled with. */
  private labeled(environment: Environment): Environment & { installationId?: string } {
    return { ...environment, installationId: this.options.installationId };
  }

  /**
   * Removes an orphan's Pod and Secret; its claim (someone's home) stays for
   * an admin to judge. Only a Pod of this installation's (the watch holds no other).
   */
  async removeWorkload(ref: string): Promise<void> {
    if (!this.watch.all().some((pod) => pod.metadata?.name === ref)) return;
    await this.deleteIgnoringMissing(`Pod ${ref}`, () =>
      this.core.deleteNamespacedPod({ name: ref, namespace: this.namespace, gracePeriodSeconds: 0 }),
    );
    await this.deleteIgnoringMissing(`Secret ${ref}`, () =>
      this.core.deleteNamespacedSecret({ name: ref, namespace: this.namespace }),
    );
  }

  async acceptSupervisorReport(environmentId: string, token: string, report: SupervisorReport): Promise<void> {
    if (!(await this.tokenMatches(environmentId, token))) {
      throw new CvmError("UNAUTHORIZED", "Not this environment's supervisor (wrong report token)");
    }
    const previous = this.reports.get(environmentId);
    this.reports.set(environmentId, {
      ...previous,
      ...report,
      observation: { ...previous?.observation, ...report.observation },
    });
    const live = this.live.get(environmentId);
    if (live) {
      for (const line of report.lines ?? []) await live.context.log(line);
      if (report.state && report.state !== "running" && report.state !== "failed") live.reach(report.state);
    }
    this.watch.poke(environmentId);
  }

  /** Whether the token is the projected one of this environment's current Pod (report-token.ts). */
  private async tokenMatches(environmentId: string, token: string): Promise<boolean> {
    const identity = {
      namespace: this.namespace,
      pod: objectNames(environmentId).pod,
      uid: this.watch.get(environmentId)?.metadata?.uid,
    };
    const check = (keys: Map<string | undefined, KeyObject>) =>
      verifyReportToken(
        token,
        identity,
        (kid) => keys.get(kid) ?? (keys.size === 1 ? [...keys.values()][0] : undefined),
      );
    if (check(await this.signingKeys())) return true;
    // The issuer may have rotated its keys since they were read: once more with fresh ones.
    const fresh = await this.signingKeys(true);
    return fresh !== undefined && check(fresh);
  }

  /**
   * The cluster's service-account signing keys, read from its issuer's JWKS
   * (every service account may); read again when asked, at most every 30 s.
   */
  private async signingKeys(refresh?: true): Promise<Map<string | undefined, KeyObject>> {
    const known = this.jwks;
    if (known && (!refresh || Date.now() - known.readAt < 30_000)) return known.keys;
    try {
      const document = await this.openid.getServiceAccountIssuerOpenIDKeyset();
      this.jwks = { keys: keysFromJwks(document), readAt: Date.now() };
      return this.jwks.keys;
    } catch (error) {
      throw clusterRefusal("reading the service-account issuer's keys (/openid/v1/jwks)", error);
    }
  }

  async close(): Promise<void> {
    await this.watch.stop();
  }
}

const jsonPatch = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
