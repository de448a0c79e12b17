/**
 * `cvm ssh`, `ssh NAME.cvm` and `cvm port-forward` start a stopped
 * environment rather than refuse: when the server refuses the connection
 * because the environment is not running (409), it is started (or waited
 * for, mid-build), saying so on stderr, and the connection is tried once
 * more. The common case, a running environment, costs no extra request.
 */

import type { CvmClient } from "../client/index.js";
import { buildingStates, type Environment } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import { Refused } from "./websocket.js";

const say = (line: string) => process.stderr.write(`cvm: ${line}\n`);

/** Starts the environment if it is stopped or failed, waits while it builds; resolves once it runs. */
export async function ensureRunning(client: CvmClient, ref: string): Promise<Environment> {
  let environment = await client.environment(ref);
  if (environment.state === "running") return environment;
  if (environment.state === "stopped" || environment.state === "failed") {
    say(`${environment.name} is ${environment.state}: starting it`);
    environment = await client.startEnvironment(environment.id);
  } else if ((buildingStates as readonly string[]).includes(environment.state)) {
    say(`${environment.name} is ${environment.state}: waiting until it runs`);
  } else {
    throw new CvmError("CONFLICT", `${environment.name} is ${environment.state}`);
  }
  let last = "";
  for await (const item of client.logs(environment.id, { build: environment.buildId, follow: true })) {
    if ("end" in item) break;
    last = item.text;
  }
  environment = await client.environment(environment.id);
  if (environment.state !== "running") {
    throw new CvmError("CONFLICT", `${environment.name} did not start: ${environment.stateReason ?? last}`);
  }
  say(`${environment.name} is running`);
  return environment;
}

/** `connect()`, and once more after starting the environment if it was refused for not running. */
export async function startedIfStopped<T>(client: CvmClient, ref: string, connect: () => Promise<T>): Promise<T> {
  try {
    return await connect();
  } catch (error) {
    if (!(error instanceof Refused && error.status === 409)) throw error;
    await ensureRunning(client, ref);
    return connect();
  }
}
