/**
 * Infrastructure checks: can this installation host CVMs? The server calls
 * runInfrastructureChecks for GET /settings/infrastructure/checks and before
 * turning CVMs on; `cvm doctor` prints the same results.
 */

import type { CheckResult } from "../api/contract.js";
import type { InfrastructureSettings } from "../core/settings.js";
import type { OnCheckProgress } from "./check.js";
import type { TrialOptions } from "./cluster-checks.js";
import { runLocalChecks } from "./local-checks.js";

export { type OnCheckProgress, worstStatus } from "./check.js";

export interface CheckContext {
  provider: "docker" | "kubernetes";
  settings: InfrastructureSettings;
  dockerHost?: string;
  /** docker: the server's data directory, where cvm's own engine keeps images (its free disk is checked). */
  dataDir?: string;
  kubeconfig?: string;
  namespace?: string;
  /** kubernetes: what the trial Pod is made with beside the settings. */
  trial?: TrialOptions;
}

/** Every infrastructure check for the provider in use, in a stable order. */
export async function runInfrastructureChecks(
  context: CheckContext,
  onProgress?: OnCheckProgress,
): Promise<CheckResult[]> {
  if (context.provider === "kubernetes") {
    const { runClusterChecks } = await import("./cluster-checks.js");
    return runClusterChecks(
      {
        settings: context.settings,
        kubeconfig: context.kubeconfig,
        namespace: context.namespace,
        trial: context.trial,
      },
      onProgress,
    );
  }
  return runLocalChecks(
    { choice: context.settings.runtime, dockerHost: context.dockerHost, dataDir: context.dataDir },
    onProgress,
  );
}
