/**
 * Which isolation runtime a CVM gets: the admin's choice (auto, sysbox,
 * userns) against what the engine offers. sysbox when the engine lists
 * sysbox-runc (the seed's production runtime); userns is built in.
 */

import { CvmError } from "../core/errors.js";
import type { RuntimeChoice } from "../core/settings.js";
import type { CvmRuntime } from "./cvm-container.js";

export const sysboxRuntime = "sysbox-runc";

export function chooseRuntime(choice: RuntimeChoice, engineRuntimes: string[]): CvmRuntime {
  const hasSysbox = engineRuntimes.includes(sysboxRuntime);
  const choices: Record<RuntimeChoice, () => CvmRuntime> = {
    auto: () => (hasSysbox ? "sysbox" : "userns"),
    userns: () => "userns",
    sysbox: () => {
      if (hasSysbox) return "sysbox";
      throw new CvmError(
        "UNAVAILABLE",
        "The isolation runtime is set to sysbox, but this node's engine has no sysbox-runc",
        {
          detail: `Engine runtimes: ${engineRuntimes.join(", ") || "none"}. Install sysbox on the node, or set the runtime to auto or userns.`,
        },
      );
    },
  };
  return choices[choice]();
}
