/** A client for the Docker engine at an address (engine-address.ts says what an address means). */

import Dockerode from "dockerode";
import { engineOptions } from "./engine-address.js";

/** A client for the engine at `address`; `timeout` (ms) bounds each request. */
export function dockerClient(address: string, options: { timeout?: number } = {}): Dockerode {
  return new Dockerode({ ...engineOptions(address), ...options });
}
