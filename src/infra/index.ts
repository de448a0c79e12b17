import type { CheckResult } from "../api/contract.js";
import type { InfrastructureSettings } from "../core/settings.js";

export interface CheckContext {
  provider: "docker" | "kubernetes";
  settings: InfrastructureSettings;
  dockerHost?: string;
  kubeconfig?: string;
  namespace?: string;
}

/** Every infrastructure check for the provider in use. (Stub: the checks' owner replaces it.) */
export async function runInfrastructureChecks(_context: CheckContext): Promise<CheckResult[]> {
  return [];
}
