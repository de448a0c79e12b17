/**
 * Stopping and removing a container, each with a bound. Docker 20.10 can
 * wait forever for the exit of a container it has killed (`rm -f` waits on
 * the exit with no timeout, and every later call about the container waits
 * behind it); cvm gives up after a while and says so, instead of holding a
 * user's request, a server's start or a shutdown forever.
 */

import type Dockerode from "dockerode";
import { seconds } from "../core/deadline.js";
import { CvmError } from "../core/errors.js";
import { ignoreMissing } from "./engine-errors.js";

/** How long a removal may take: killing the container is part of it. */
export const removeTimeoutMs = 60_000;
/** What a stop may take beyond the grace period it gives the container. */
const stopSlackMs = 60_000;

async function bounded<T>(call: (signal: AbortSignal) => Promise<T>, ms: number, what: string): Promise<T> {
  try {
    return await call(AbortSignal.timeout(ms));
  } catch (error) {
    if ((error as Error).name !== "AbortError") throw error;
    throw new CvmError("UNAVAILABLE", `The container engine did not ${what} within ${seconds(ms)}`, {
      detail:
        "The engine may still finish; ask again in a while. A container whose exit the engine never hears of stays until the engine restarts.",
      cause: error,
    });
  }
}

/** Removes the container (killing it if it runs), and its anonymous volumes when asked; one already gone counts. */
export async function removeContainer(
  container: Dockerode.Container,
  options: { volumes: boolean; timeoutMs?: number },
): Promise<void> {
  await bounded(
    (abortSignal) => ignoreMissing(container.remove({ force: true, v: options.volumes, abortSignal })),
    options.timeoutMs ?? removeTimeoutMs,
    `remove container ${container.id.slice(0, 12)}`,
  );
}

/** Stops the container: `timeoutSeconds` to end on its own, then killed; one stopped or gone already counts. */
export async function stopContainer(
  container: Dockerode.Container,
  timeoutSeconds: number,
  options: { timeoutMs?: number } = {},
): Promise<void> {
  await bounded(
    (abortSignal) => ignoreMissing(container.stop({ t: timeoutSeconds, abortSignal })),
    options.timeoutMs ?? timeoutSeconds * 1000 + stopSlackMs,
    `stop container ${container.id.slice(0, 12)}`,
  );
}
