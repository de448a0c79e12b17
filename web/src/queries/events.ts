/**
 * One shared connection to GET /events for the whole dashboard: pages
 * subscribe, the first subscriber opens it, the last one closes it. When the
 * stream drops it reconnects with backoff, and tells subscribers so they can
 * re-read what they may have missed.
 */

import type { EnvironmentEvent } from "../../../src/api/contract.js";
import { ApiError, client } from "../api.js";

export type LiveStatus = "connecting" | "live" | "reconnecting";

interface Subscriber {
  onEvent(event: EnvironmentEvent): void;
  /** The stream (re)opened: anything may have changed meanwhile. */
  onOpen?(): void;
  onStatus?(status: LiveStatus): void;
}

const subscribers = new Set<Subscriber>();
let controller: AbortController | undefined;
let status: LiveStatus = "connecting";

function setStatus(next: LiveStatus) {
  status = next;
  for (const s of subscribers) s.onStatus?.(next);
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

async function run(signal: AbortSignal) {
  let failures = 0;
  while (!signal.aborted) {
    try {
      const stream = client.events(signal);
      let opened = false;
      for await (const event of stream) {
        if (!opened) {
          opened = true;
          failures = 0;
          setStatus("live");
          for (const s of subscribers) s.onOpen?.();
        }
        if (event.type !== "heartbeat") for (const s of subscribers) s.onEvent(event);
      }
    } catch (error) {
      // A 401 ends the session; the session module takes it from there.
      if (signal.aborted || (error instanceof ApiError && error.status === 401)) return;
    }
    if (signal.aborted) return;
    setStatus("reconnecting");
    failures++;
    await sleep(Math.min(500 * 2 ** failures, 15_000), signal);
  }
}

export function subscribeEnvironmentEvents(subscriber: Subscriber): () => void {
  subscribers.add(subscriber);
  subscriber.onStatus?.(status);
  if (!controller) {
    controller = new AbortController();
    status = "connecting";
    void run(controller.signal);
  }
  return () => {
    subscribers.delete(subscriber);
    if (subscribers.size === 0) {
      controller?.abort();
      controller = undefined;
    }
  };
}
