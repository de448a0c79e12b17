/**
 * First run: the first account on a fresh install becomes the site admin. It
 * takes the one-time setup code the server printed in its log
 * (src/server/setup-code.ts), so reaching the server is not enough to claim it.
 */

import { CvmError } from "../core/errors.js";
import { sessionAnswer, tokenOrigin } from "./auth.js";
import type { SetupStatus } from "./contract.js";
import { readJson } from "./input.js";
import type { ApiRoutes } from "./routes.js";
import { firstAdminSchema, sessionSchema, setupStatusSchema } from "./schemas.js";

const alreadySetUp = () => new CvmError("CONFLICT", "This installation already has its first account: sign in instead");

export function setupRoutes(routes: ApiRoutes): void {
  const { store, accounts, audit, settings, setup, secureCookies, site } = routes.deps;
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
      summary:
        "Create the first account, a site admin; only while none exists, and only with the setup code the server printed in its log",
      tag: "accounts",
      auth: false,
      body: firstAdminSchema,
      response: sessionSchema,
      status: 201,
      errors: [403, 409],
    },
    async (c) => {
      const { setupCode, ...credentials } = await readJson(c, firstAdminSchema);
      if ((await store.users.count()) > 0) throw alreadySetUp();
      if (!(await setup.matches(setupCode))) {
        // Another request may have just created the first admin and spent the code.
        if ((await store.users.count()) > 0) throw alreadySetUp();
        throw new CvmError("FORBIDDEN", "Wrong setup code", {
          detail: "The server prints it in its log at start: the line 'first-run setup code'.",
          validations: [{ field: "setupCode", detail: "is not the code in the server's log" }],
        });
      }
      const user = await store.users.createFirst(await accounts.createUser({ ...credentials, role: "site-admin" }));
      if (!user) throw alreadySetUp();
      await setup.spent();
      await audit.record(user, "user.create", `user/${user.id}`, null, { ...user, firstAdmin: true });
      const issued = await accounts.issue(user.id, "session", "session", undefined, tokenOrigin(c, site));
      return sessionAnswer(c, site, user, issued, secureCookies, 201);
    },
  );
}
