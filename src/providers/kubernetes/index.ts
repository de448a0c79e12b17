import type { Provider } from "../../core/provider.js";
import type { ProviderOptions } from "../index.js";

/** (Stub: the kubernetes provider's owner replaces it.) */
export async function createKubernetesProvider(_options: ProviderOptions): Promise<Provider> {
  throw new Error("kubernetes provider: not implemented yet");
}
