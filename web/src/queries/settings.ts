import type { InfrastructureSettingsUpdate } from "../../../src/api/contract.js";
import { client } from "../api.js";
import { useResource } from "./resource.js";

export const useInfrastructure = () => useResource(() => client.infrastructure(), []);
export const useInfrastructureChecks = () => useResource(() => client.infrastructureChecks(), []);
export const updateInfrastructure = (update: InfrastructureSettingsUpdate) => client.updateInfrastructure(update);
