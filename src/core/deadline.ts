/**
 * Bounds on waiting for work that may never end. A container engine stuck on
 * one container (Docker 20.10 can wait forever for an exit it never hears of)
 * holds every later call about it; the server must still start, a user still
 * be told, and a shutdown still end.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { CvmError } from "./errors.js";

/**
 * `work`'s answer, or undefined once `ms` have passed (its failure in time
 * is thrown); the timer ends with the wait, so it holds no process open after.
 */
export async function within<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  const timer = new AbortController();
  const late = sleep(ms, undefined, { signal: timer.signal }).catch(() => undefined);
  return Promise.race([work, late]).finally(() => timer.abort());
}

/** `work`'s answer, or a 503 saying that `what` did not end within `ms` (the work itself may still end later). */
export async function answerWithin<T>(work: Promise<T>, ms: number, what: string, detail?: string): Promise<T> {
  // Wrapped, so that an answer of undefined is told apart from no answer.
  const answer = await within(
    work.then((value) => ({ value })),
    ms,
  );
  if (answer) return answer.value;
  throw new CvmError("UNAVAILABLE", `${what} did not end within ${seconds(ms)}`, detail ? { detail } : {});
}

/** A bound as people read it: "0.3 s", "60 s". */
export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
