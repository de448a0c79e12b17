/** API tokens of the signed-in user: list, create (the secret is shown once), revoke. */

import { notFound } from "../core/errors.js";
import { actorOf } from "./auth.js";
import type { CreatedToken } from "./contract.js";
import { readJson } from "./input.js";
import { type ApiRoutes, param } from "./routes.js";
import { createdTokenSchema, createTokenSchema, tokenListSchema } from "./schemas.js";

const defaultTtlDays = 30;

export function tokenRoutes(routes: ApiRoutes): void {
  const { store, accounts } = routes.deps;
  routes.add(
    {
      method: "get",
      path: "/tokens",
      summary: "Your session and API tokens (never their secrets)",
      tag: "tokens",
      response: tokenListSchema,
    },
    async (c) => c.json({ items: await store.tokens.listForUser(actorOf(c).id) }),
  );
  routes.add(
    {
      method: "post",
      path: "/tokens",
      summary: "Create an API token; its secret is shown only in this answer",
      tag: "tokens",
      body: createTokenSchema,
      response: createdTokenSchema,
      status: 201,
    },
    async (c) => {
      const request = await readJson(c, createTokenSchema);
      const issued = await accounts.issue(actorOf(c).id, "api", request.name, request.ttlDays ?? defaultTtlDays);
      return c.json<CreatedToken>({ token: issued.token, secret: issued.secret }, 201);
    },
  );
  routes.add(
    { method: "delete", path: "/tokens/:id", summary: "Revoke one of your tokens", tag: "tokens", response: null },
    async (c) => {
      const id = param(c, "id");
      const token = (await store.tokens.listForUser(actorOf(c).id)).find((t) => t.id === id);
      if (!token) throw notFound("Token");
      if (!token.revokedAt) await accounts.revoke(id);
      return c.body(null, 204);
    },
  );
}
