import type { Logger } from "pino";
import type { Provider } from "../core/provider.js";

export interface CvmSupervisorOptions {
  /** cvm's own isolated engine keeps its data root, exec root and socket below this. */
  dataDir: string;
  logger: Logger;
  /** The host's engine, where a laptop user's freshly built image may be found. */
  hostDockerHost?: string;
}

/**
 * The supervising side of CVMs on one machine: everything a Provider does, for
 * environments with `cvm: true`. The docker provider delegates to it.
 * (Stub: the supervisor's owner replaces it.)
 */
export type CvmSupervisor = Omit<Provider, "name">;

export async function createCvmSupervisor(_options: CvmSupervisorOptions): Promise<CvmSupervisor> {
  throw new Error("supervisor: not implemented yet");
}
