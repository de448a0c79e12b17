/**
 * Keeps the provider a polite API client: at most `concurrency` requests in
 * flight (a burst of creates queues here rather than at the API server's
 * inflight limit), and a request the server throttled (429) is retried after
 * the delay it asked for.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { statusOf } from "../../kubernetes/index.js";

export class RequestLimiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /** Requests that finish something (a Pod after its claim and Secret) go before ones that begin something. */
  private readonly urgent: (() => void)[] = [];

  constructor(private readonly concurrency = 32) {}

  async run<T>(request: () => Promise<T>, urgent = false): Promise<T> {
    if (this.active >= this.concurrency) {
      await new Promise<void>((resolve) => (urgent ? this.urgent : this.waiting).push(resolve));
    }
    this.active++;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          return await request();
        } catch (error) {
          if (statusOf(error) !== 429 || attempt >= 10) throw error;
          const retryAfter = Number((error as { headers?: Record<string, string> }).headers?.["retry-after"]);
          await sleep(
            Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 200 * 2 ** Math.min(attempt, 4),
          );
        }
      }
    } finally {
      this.active--;
      (this.urgent.shift() ?? this.waiting.shift())?.();
    }
  }
}
