/**
 * Waiting for an environment to come to rest after create, start, stop or
 * rebuild, showing how it gets there: a build's log lines as they are
 * written, or, when the action started no build (stop), each state it passes
 * through. `cvm env start` and friends wait by default, like `coder start`.
 */

import type { CvmClient } from "../client/index.js";
import { type Environment, restingStates } from "../core/environment.js";

export type Print = (line: string) => void;

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** Prints the build log as it grows, until the build ends; its outcome. */
export async function followBuild(
  client: CvmClient,
  ref: string,
  print: Print,
  options: { build?: string } = {},
): Promise<string | undefined> {
  for await (const item of client.logs(ref, { follow: true, build: options.build })) {
    if ("end" in item) return item.outcome;
    print(`${item.at.slice(11, 23)}  ${item.text}`);
  }
  return undefined;
}

/** Follows the environment's changes on the event stream until it rests (or is gone); the last one seen. */
async function followStates(client: CvmClient, environment: Environment, print: Print): Promise<Environment> {
  const started = Date.now();
  const stop = new AbortController();
  const events = client.events(stop.signal);
  try {
    // The stream is open before the environment is read again, so no change falls between the two.
    await events.next();
    let last = await client.environment(environment.id);
    if (last.state !== environment.state) print(`${last.name}: ${last.state} (${seconds(started)})`);
    while (!restingStates.includes(last.state)) {
      const { value: event, done } = await events.next();
      if (done) break;
      if (event.type === "deleted" && event.id === environment.id) return { ...last, state: "deleted" };
      if (event.type !== "environment" || event.environment.id !== environment.id) continue;
      if (event.environment.state !== last.state) {
        print(`${event.environment.name}: ${event.environment.state} (${seconds(started)})`);
      }
      last = event.environment;
    }
    return last;
  } finally {
    stop.abort();
    await events.return(undefined).catch(() => undefined);
  }
}

/**
 * Waits for an action's outcome: through the build's log when the action
 * started one (create, start, rebuild), else through the environment's
 * states (stop). Returns the environment at rest.
 */
export async function waitUntilResting(
  client: CvmClient,
  environment: Environment,
  print: Print,
  options: { build: boolean },
): Promise<Environment> {
  if (options.build) {
    await followBuild(client, environment.id, print, { build: environment.buildId });
    const settled = await client.environment(environment.id);
    if (restingStates.includes(settled.state)) return settled;
    return followStates(client, settled, print);
  }
  return followStates(client, environment, print);
}
