/**
 * One watch over every cvm Pod in the namespace: an informer that lists once,
 * then follows changes, and starts again (from where it was, or with a fresh
 * list when the API server has forgotten that point) whenever the watch
 * drops. Builds and observations read its cache and wait on its events: no
 * request per environment, however many there are.
 */

import { CoreV1Api, type KubeConfig, type V1Pod, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { apiClient, statusOf } from "../../kubernetes/index.js";
import { labels } from "./names.js";

type Listener = (pod: V1Pod | undefined) => void;

const maxBackoffMs = 5000;

/**
 * The fields cvm reads of a Pod. The cache keeps only these: at hundreds of
 * environments, whole Pods (managed fields, full specs) would be most of the
 * server's memory.
 */
export function slimPod(pod: V1Pod): V1Pod {
  const { metadata, spec, status } = pod;
  return {
    metadata: {
      name: metadata?.name,
      uid: metadata?.uid,
      resourceVersion: metadata?.resourceVersion,
      labels: metadata?.labels,
      deletionTimestamp: metadata?.deletionTimestamp,
    },
    spec: { nodeName: spec?.nodeName, containers: [] },
    status: status && {
      phase: status.phase,
      reason: status.reason,
      message: status.message,
      conditions: status.conditions?.map(({ type, status, reason, message }) => ({ type, status, reason, message })),
      containerStatuses: status.containerStatuses?.map(({ name, state }) => ({
        name,
        state,
        image: "",
        imageID: "",
        ready: false,
        restartCount: 0,
      })),
    },
  };
}

export class PodWatch {
  private readonly pods = new Map<string, V1Pod>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly core: CoreV1Api;
  private readonly watcher: Watch;
  private readonly path: string;
  private resourceVersion = "";
  private request?: AbortController;
  private stopped = false;
  private backoffMs = 200;
  private restartTimer?: NodeJS.Timeout;
  /** How many times the watch dropped and started again (for tests and metrics). */
  restarts = 0;

  constructor(
    config: KubeConfig,
    private readonly namespace: string,
    private readonly logger: Logger,
    /** Which Pods are this installation's (names.ts installationSelector). */
    private readonly selector: string,
  ) {
    this.core = apiClient(config, CoreV1Api);
    this.watcher = new Watch(config);
    this.path = `/api/v1/namespaces/${namespace}/pods`;
  }

  /** Lists and starts watching; resolves once the cache holds every cvm Pod. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.list();
    await this.follow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.request?.abort();
  }

  /** A fresh list replaces the cache: Pods that went while nobody watched count as deleted. */
  private async list(): Promise<void> {
    const list = await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: this.selector });
    const seen = new Set<string>();
    for (const pod of list.items) {
      const id = this.environmentOf(pod);
      if (id) seen.add(id);
      this.set(slimPod(pod));
    }
    for (const [id, pod] of [...this.pods]) if (!seen.has(id)) this.remove(pod);
    this.resourceVersion = list.metadata?.resourceVersion ?? "";
  }

  /** Watches from the last resource version; an ended watch resumes, an expired one lists again. */
  private async follow(): Promise<void> {
    if (this.stopped) return;
    this.request = await this.watcher.watch(
      this.path,
      { resourceVersion: this.resourceVersion, labelSelector: this.selector, allowWatchBookmarks: true },
      (type: string, object: V1Pod & { code?: number }) => {
        if (type === "ERROR") {
          // 410 Gone: the server no longer has our resource version; the next start lists anew.
          if (object.code === 410) this.resourceVersion = "";
          return;
        }
        if (object.metadata?.resourceVersion) this.resourceVersion = object.metadata.resourceVersion;
        if (type === "ADDED" || type === "MODIFIED") this.set(slimPod(object));
        else if (type === "DELETED") this.remove(object);
      },
      (error: unknown) => {
        if (this.stopped) return;
        if (error) this.restart(error);
        else {
          this.backoffMs = 200;
          this.resume().catch((resumeError) => this.restart(resumeError));
        }
      },
    );
  }

  private async resume(): Promise<void> {
    if (!this.resourceVersion) await this.list();
    await this.follow();
  }

  /** Cuts the watch's connection as a network fault would; it resumes by itself (tests use this). */
  interrupt(): void {
    this.request?.abort();
  }

  /** The environment's Pod as last seen. */
  get(environmentId: string): V1Pod | undefined {
    return this.pods.get(environmentId);
  }

  all(): V1Pod[] {
    return [...this.pods.values()];
  }

  /** Calls `listener` on every change of the environment's Pod (undefined once it is gone). */
  subscribe(environmentId: string, listener: Listener): () => void {
    let set = this.listeners.get(environmentId);
    if (!set) {
      set = new Set();
      this.listeners.set(environmentId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(environmentId);
    };
  }

  /**
   * Resolves with the first value `decide` returns for the environment's Pod,
   * checking the cached Pod first and then every change; rejects when the
   * signal aborts.
   */
  until<T>(environmentId: string, decide: (pod: V1Pod | undefined) => T | undefined, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let unsubscribe = () => {};
      const onAbort = () => {
        unsubscribe();
        reject(signal?.reason ?? new Error("aborted"));
      };
      const check = (pod: V1Pod | undefined) => {
        let decided: T | undefined;
        try {
          decided = decide(pod);
        } catch (error) {
          unsubscribe();
          signal?.removeEventListener("abort", onAbort);
          reject(error);
          return;
        }
        if (decided === undefined) return;
        unsubscribe();
        signal?.removeEventListener("abort", onAbort);
        resolve(decided);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      unsubscribe = this.subscribe(environmentId, check);
      check(this.get(environmentId));
    });
  }

  /** Re-checks the environment's waiters against the cached Pod (something besides the Pod changed). */
  poke(environmentId: string): void {
    this.notify(environmentId, this.get(environmentId));
  }

  private environmentOf(pod: V1Pod): string | undefined {
    return pod.metadata?.labels?.[labels.environment];
  }

  private set(pod: V1Pod): void {
    const id = this.environmentOf(pod);
    if (!id) return;
    this.pods.set(id, pod);
    this.notify(id, pod);
  }

  private remove(pod: V1Pod): void {
    const id = this.environmentOf(pod);
    if (!id) return;
    // A newer Pod of the same environment (a rebuild) may already be cached: only its own deletion counts.
    if (this.pods.get(id)?.metadata?.uid !== pod.metadata?.uid) return;
    this.pods.delete(id);
    this.notify(id, undefined);
  }

  private notify(id: string, pod: V1Pod | undefined): void {
    for (const listener of [...(this.listeners.get(id) ?? [])]) listener(pod);
  }

  private restart(error: unknown): void {
    if (this.stopped) return;
    this.restarts++;
    const gone = statusOf(error) === 410;
    if (gone) this.resourceVersion = "";
    this.logger.warn({ err: error, namespace: this.namespace, retryInMs: this.backoffMs }, "pod watch dropped");
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped) return;
      this.resume().catch((resumeError) => this.restart(resumeError));
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, maxBackoffMs);
  }
}
