/**
 * Which isolation runtime a CVM gets: the admin's choice (auto, sysbox,
 * userns) against what the engine offers. sysbox when the engine lists
 * sysbox-runc (the seed's production runtime); userns is built in. One rule
 * for the build, the doctor's checks, the cluster checks, the Pod's agent and
 * the environment's record before its build.
 */

import type { IsolationRuntimeName } from "./environment.js";
import { CvmError } from "./errors.js";
import type { RuntimeChoice } from "./settings.js";

export type CvmRuntime = Exclude<IsolationRuntimeName, "none">;

export const sysboxRuntime = "sysbox-runc";

/**
 * The runtime the choice means on an engine listing `engineRuntimes`. Without
 * the list (a record made before its build, a cluster whose nodes' engines
 * are not asked), `auto` means the built-in userns.
 */
export function resolveRuntime(choice: RuntimeChoice, engineRuntimes: readonly string[] = []): CvmRuntime {
  if (choice !== "auto") return choice;
  return engineRuntimes.includes(sysboxRuntime) ? "sysbox" : "userns";
}

/** The runtime a build uses: as resolved, but sysbox asked for where the engine has none is refused, not swapped. */
export function chooseRuntime(choice: RuntimeChoice, engineRuntimes: readonly string[]): CvmRuntime {
  const runtime = resolveRuntime(choice, engineRuntimes);
  if (runtime === "sysbox" && !engineRuntimes.includes(sysboxRuntime)) {
    throw new CvmError(
      "UNAVAILABLE",
      "The isolation runtime is set to sysbox, but this node's engine has no sysbox-runc",
      {
        detail: `Engine runtimes: ${engineRuntimes.join(", ") || "none"}. Install sysbox on the node, or set the runtime to auto or userns.`,
      },
    );
  }
  return runtime;
}
