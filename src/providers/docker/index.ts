import type { Provider } from "../../core/provider.js";
import type { ProviderOptions } from "../index.js";

/** (Stub: the docker provider's owner replaces it.) */
export async function createDockerProvider(_options: ProviderOptions): Promise<Provider> {
  throw new Error("docker provider: not implemented yet");
}
