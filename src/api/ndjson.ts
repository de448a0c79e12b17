/**
 * Streamed answers: one JSON object per line, produced until the client
 * leaves, the server stops, or (for a stream held in OpenConnections) the
 * caller's access ends.
 */

import type { Logger } from "pino";

export type Produce = (write: (item: unknown) => void, signal: AbortSignal) => Promise<void>;

/** Registers the stream where access changes can end it (`end`); answers the release for when it ends by itself. */
export type Hold = (end: () => void) => () => void;

export function ndjsonResponse(produce: Produce, shutdown: AbortSignal, logger: Logger, hold?: Hold): Response {
  const encoder = new TextEncoder();
  const gone = new AbortController();
  const ended = new AbortController();
  const signal = AbortSignal.any([gone.signal, ended.signal, shutdown]);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const write = (item: unknown) => {
        if (!signal.aborted) controller.enqueue(encoder.encode(`${JSON.stringify(item)}\n`));
      };
      const release = hold?.(() => ended.abort());
      produce(write, signal)
        .catch((error) => {
          if (!signal.aborted) logger.error({ err: error }, "stream failed");
        })
        .finally(() => {
          release?.();
          try {
            controller.close();
          } catch {
            // Already closed or cancelled by the client.
          }
        });
    },
    cancel() {
      gone.abort();
    },
  });
  return new Response(stream, {
    headers: { "content-type": "application/x-ndjson", "cache-control": "no-store", "x-accel-buffering": "no" },
  });
}

/** Resolves after `ms`, on `wake` being called, or on abort; whichever comes first. */
export function nap(ms: number, signal: AbortSignal, setWake: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    setWake(done);
  });
}
