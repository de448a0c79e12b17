/**
 * A fake, named so: a provider that cannot be reached. Used only while the
 * real docker provider is not implemented, for tests whose requests must never
 * reach a provider (validation, roles); any call fails loudly.
 */

import type { Provider } from "../../src/core/provider.js";

const unreachable = (what: string) => () => Promise.reject(new Error(`unreachable provider: ${what} was called`));

export function unreachableProvider(): Provider {
  return {
    name: "docker",
    build: unreachable("build"),
    start: unreachable("start"),
    stop: unreachable("stop"),
    remove: unreachable("remove"),
    discard: unreachable("discard"),
    observe: unreachable("observe"),
    exec: unreachable("exec"),
    listWorkloads: async () => [],
    removeWorkload: unreachable("removeWorkload"),
    close: async () => undefined,
  };
}
