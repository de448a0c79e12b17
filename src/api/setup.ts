/** First run: the first account on a fresh install becomes the site admin. */

import { CvmError } from "../core/errors.js";
import { sessionAnswer } from "./auth.js";
import type { SetupStatus } from "./contract.js";
import { readJson } from "./input.js";
import type { ApiRoutes } from "./routes.js";
import { credentialsSchema, sessionSchema, setupStatusSchema } from "./schemas.js";

export function setupRoutes(routes: ApiRoutes): void {
  const { store, accounts, audit, settings, secureCookies } = routes.deps;
  routes.add(
    {
      method: "get",
      path: "/setup",
      summary: "Whether this install still needs its first account",
      tag: "accounts",
      auth: false,
      response: setupStatusSchema,
    },
    async (c) =>
      c.json<SetupStatus>({
        needsFirstAdmin: (await store.users.count()) === 0,
        cvmEnabled: (await settings.get()).cvmEnabled,
      }),
  );
  routes.add(
    {
      method: "post",
      path: "/setup/first-admin",
      summary: "Create the first account, a site admin; only while none exists",
      tag: "accounts",
      auth: false,
      body: credentialsSchema,
      response: sessionSchema,
      status: 201,
      errors: [409],
    },
    async (c) => {
      const credentials = await readJson(c, credentialsSchema);
      const user = await store.users.createFirst(await accounts.createUser({ ...credentials, role: "site-admin" }));
      if (!user) throw new CvmError("CONFLICT", "This installation already has its first account: sign in instead");
      await audit.record(user, "user.create", `user/${user.id}`, null, { ...user, firstAdmin: true });
      return sessionAnswer(c, user, await accounts.issue(user.id, "session", "session"), secureCookies, 201);
    },
  );
}
