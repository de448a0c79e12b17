/** The warm pools for Manage > Admin > Infrastructure: their state now, and setting one. */

import type { PoolUpdateRequest } from "../../../src/api/contract.js";
import { client } from "../api.js";
import { useResource } from "./resource.js";

export const usePools = () => useResource(() => client.pools(), []);
export const setPool = (pool: PoolUpdateRequest) => client.setPool(pool);
