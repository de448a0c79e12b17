/**
 * Registry passwords are sealed on their way into the store and opened on
 * their way out, so the rest of the server handles them as plain values and
 * the database (and every backup of it) holds only sealed ones. At start,
 * every stored password not sealed under the current key (a plain one from
 * before sealing existed, or one sealed under the previous key before a
 * rotation) is sealed again.
 */

import type { Logger } from "pino";
import type { RegistryCredentials } from "../core/environment.js";
import type { Store } from "../core/store.js";
import { newId } from "../store/index.js";
import type { SecretBox } from "./secret-box.js";

/** What a sealed password belongs to: a sealed value copied to another environment does not open there. */
const context = (environmentId: string) => `environment/${environmentId}/registry-password`;

export function sealCredentials(store: Store, box: SecretBox): Store {
  const { environments } = store;
  const seal = (id: string, credentials: RegistryCredentials): RegistryCredentials => ({
    username: credentials.username,
    password: box.seal(credentials.password, context(id)),
  });
  const open = (id: string, credentials: RegistryCredentials): RegistryCredentials => ({
    username: credentials.username,
    password: box.open(credentials.password, context(id)),
  });
  return {
    ...store,
    environments: {
      ...environments,
      create(environment, credentials) {
        const id = environment.id || newId("env");
        return environments.create({ ...environment, id }, credentials && seal(id, credentials));
      },
      async registryCredentials(id) {
        const stored = await environments.registryCredentials(id);
        return stored && open(id, stored);
      },
      async listRegistryCredentials() {
        const stored = await environments.listRegistryCredentials();
        return stored.map(({ environmentId, credentials }) => ({
          environmentId,
          credentials: open(environmentId, credentials),
        }));
      },
      replaceRegistryCredentials(id, credentials) {
        return environments.replaceRegistryCredentials(id, seal(id, credentials));
      },
    },
  };
}

/**
 * Seals again, under the current key, every password the store holds under
 * another key or none. `raw` is the store without sealing (what the rows
 * hold); answers how many were sealed again. A password sealed under a key
 * the server lacks stops the start with a message naming that key.
 */
export async function resealCredentials(raw: Store, box: SecretBox, logger: Logger): Promise<number> {
  let resealed = 0;
  for (const { environmentId, credentials } of await raw.environments.listRegistryCredentials()) {
    if (box.sealedWithCurrent(credentials.password)) continue;
    const plain = box.open(credentials.password, context(environmentId));
    await raw.environments.replaceRegistryCredentials(environmentId, {
      username: credentials.username,
      password: box.seal(plain, context(environmentId)),
    });
    resealed++;
  }
  if (resealed > 0)
    logger.info({ resealed, key: box.currentKeyId }, "stored secrets sealed again under the current key");
  return resealed;
}
