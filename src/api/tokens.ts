/** API tokens of the signed-in user: list, create (the secret is shown once), revoke. */

import { notFound } from "../core/errors.js";
import { actorOf, tokenOrigin } from "./auth.js";
import type { CreatedToken } from "./contract.js";
import { readJson } from "./input.js";
import { type ApiRoutes, param } from "./routes.js";
import { createdTokenSchema, createTokenSchema, tokenListSchema } from "./schemas.js";

const defaultTtlDays = 30;

export function tokenRoutes(routes: ApiRoutes): void {
  const { store, accounts, audit, site } = routes.deps;
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
      const actor = actorOf(c);
      const ttlDays = request.ttlDays ?? defaultTtlDays;
      const issued = await accounts.issue(actor.id, "api", request.name, ttlDays, tokenOrigin(c, site));
      // The token as stored: its secret is never written anywhere but this answer.
      await audit.record(actor, "token.create", `token/${issued.token.id}`, null, issued.token);
      return c.json<CreatedToken>({ token: issued.token, secret: issued.secret }, 201);
    },
  );
  routes.add(
    {
      method: "delete",
      path: "/tokens/:id",
      summary: "Revoke one of your tokens; connections it holds open close at once",
      tag: "tokens",
      response: null,
    },
    async (c) => {
      const id = param(c, "id");
      const token = (await store.tokens.listForUser(actorOf(c).id)).find((t) => t.id === id);
      if (!token) throw notFound("Token");
      if (!token.revokedAt) {
        await accounts.revoke(id);
        await audit.record(actorOf(c), "token.revoke", `token/${id}`, token, { ...token, revoked: true });
      }
      return c.body(null, 204);
    },
  );
}
