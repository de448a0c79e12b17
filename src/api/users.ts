/** Accounts: who am I, and (site admins) creating users and changing roles. */

import { CvmError, notFound } from "../core/errors.js";
import type { User } from "../core/user.js";
import { actorOf, requirePermission } from "./auth.js";
import { readJson, readQuery } from "./input.js";
import { type ApiRoutes, param } from "./routes.js";
import { createUserSchema, updateUserSchema, userListSchema, userQuerySchema, userSchema } from "./schemas.js";

const isActiveAdmin = (u: User) => u.role === "site-admin" && u.active;

export function userRoutes(routes: ApiRoutes): void {
  const { store, accounts, audit } = routes.deps;
  routes.add(
    { method: "get", path: "/users/me", summary: "The signed-in user", tag: "users", response: userSchema },
    (c) => c.json(actorOf(c)),
  );
  routes.add(
    {
      method: "get",
      path: "/users",
      summary: "Users, oldest first, a page at a time (site admins and managers)",
      tag: "users",
      query: userQuerySchema,
      response: userListSchema,
      errors: [403],
    },
    async (c) => {
      requirePermission(c, "users:read", "list users");
      const { email, limit, cursor } = readQuery(c, userQuerySchema);
      return c.json(await store.users.page({ email }, { limit, cursor }));
    },
  );
  routes.add(
    {
      method: "post",
      path: "/users",
      summary: "Create a user (site admins)",
      tag: "users",
      body: createUserSchema,
      response: userSchema,
      status: 201,
      errors: [403, 409],
    },
    async (c) => {
      const actor = requirePermission(c, "users:write", "create users");
      const request = await readJson(c, createUserSchema);
      const user = await store.users.create(await accounts.createUser(request));
      await audit.record(actor, "user.create", `user/${user.id}`, null, user);
      return c.json(user, 201);
    },
  );
  routes.add(
    {
      method: "patch",
      path: "/users/:id",
      summary:
        "Change a user's role, name or activation (site admins). Deactivation revokes every token of the user; open connections the change no longer allows close within 2 s",
      tag: "users",
      body: updateUserSchema,
      response: userSchema,
      errors: [403, 409],
    },
    async (c) => {
      const actor = requirePermission(c, "users:write", "change users and roles");
      const patch = await readJson(c, updateUserSchema);
      const before = await store.users.get(param(c, "id"));
      if (!before) throw notFound("User");
      const demoted =
        isActiveAdmin(before) && ((patch.role !== undefined && patch.role !== "site-admin") || patch.active === false);
      if (demoted && (await store.users.count({ role: "site-admin", active: true })) <= 1) {
        throw new CvmError("CONFLICT", "This is the last active site admin: make another user site admin first", {
          validations: [
            { field: patch.active === false ? "active" : "role", detail: "would leave no active site admin" },
          ],
        });
      }
      const after = await store.users.update(before.id, patch);
      await accounts.userChanged(after);
      const action = patch.role !== undefined && patch.role !== before.role ? "user.set-role" : "user.update";
      await audit.record(actor, action, `user/${after.id}`, before, after);
      return c.json(after);
    },
  );
}
