/**
 * One watch over every cvm Pod in the namespace: an informer that lists once,
 * then follows changes, and starts again (from where it was, or with a fresh
 * list when the API server has forgotten that point) whenever the watch
 * drops. Builds and observations read its cache and wait on its events: no
 * request per environment, however many there are.
 */

import { CoreV1Api, type Informer, type KubeConfig, makeInformer, type V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { labels, managedSelector } from "./names.js";

type Listener = (pod: V1Pod | undefined) => void;

const maxBackoffMs = 5000;

export class PodWatch {
  private readonly pods = new Map<string, V1Pod>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly informer: Informer<V1Pod>;
  private stopped = false;
  private backoffMs = 200;
  private restartTimer?: NodeJS.Timeout;
  /** How many times the watch dropped and started again (for tests and metrics). */
  restarts = 0;

  constructor(
    config: KubeConfig,
    private readonly namespace: string,
    private readonly logger: Logger,
  ) {
    const core = config.makeApiClient(CoreV1Api);
    this.informer = makeInformer(
      config,
      `/api/v1/namespaces/${namespace}/pods`,
      () => core.listNamespacedPod({ namespace, labelSelector: managedSelector }),
      managedSelector,
    );
    const changed = (pod: V1Pod) => this.set(pod);
    this.informer.on("add", changed);
    this.informer.on("update", changed);
    this.informer.on("delete", (pod) => this.remove(pod));
    this.informer.on("connect", () => {
      this.backoffMs = 200;
    });
    this.informer.on("error", (error) => this.restart(error));
  }

  /** Lists and starts watching; resolves once the cache holds every cvm Pod. */
  async start(): Promise<void> {
    await this.informer.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.informer.stop();
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
    this.logger.warn({ err: error, namespace: this.namespace, retryInMs: this.backoffMs }, "pod watch dropped");
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped) return;
      this.informer.start().catch((startError) => this.restart(startError));
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, maxBackoffMs);
  }
}
