/**
 * This installation's id: made by the first server to ask and the same for
 * every server on the store ever after (kept in the store's settings, so
 * replicas agree on one). Every object a provider makes carries it, so two
 * installations on one engine or namespace never touch each other's.
 */

import type { Store } from "../core/store.js";
import { newId } from "../store/ids.js";

/** The settings key it is kept under. */
export const installationKey = "installation";

export function installationId(store: Store): Promise<string> {
  return store.settings.putValueIfAbsent(installationKey, newId("ins"));
}
