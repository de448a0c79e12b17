/** Signing in and out, the session cookie, and the permission checks every route uses. */

import type { Context } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { CvmError } from "../core/errors.js";
import { can, type Permission, roles } from "../core/roles.js";
import type { User } from "../core/user.js";
import type { IssuedToken, TokenOrigin } from "../server/accounts.js";
import { type SessionResponse, sessionCookie } from "./contract.js";
import { readJson } from "./input.js";
import { requestFacts } from "./request-guard.js";
import { clientAddress, requestProtocol, type SiteAddress } from "./request-origin.js";
import type { ApiRoutes, AppContext } from "./routes.js";
import { loginSchema, sessionSchema } from "./schemas.js";

export function actorOf(c: AppContext): User {
  return c.get("session").user;
}

/** Longer User-Agents are cut: they are shown, never parsed for access. */
const userAgentLimit = 300;

/** Where a request that creates a token came from: its User-Agent and the client's address (as sign-in throttling reads it). */
export function tokenOrigin(c: Context, site: SiteAddress): TokenOrigin {
  const userAgent = c.req.header("user-agent")?.slice(0, userAgentLimit) || undefined;
  return { userAgent, address: clientAddress(requestFacts(c), site) };
}

/** 403 naming the roles that may; callers that must hide existence throw 404 themselves. */
export function requirePermission(c: AppContext, permission: Permission, what: string): User {
  const actor = actorOf(c);
  if (!can(actor.role, permission)) {
    const holders = roles.filter((role) => can(role, permission)).join(" or ");
    throw new CvmError("FORBIDDEN", `Only ${holders} may ${what}`, { detail: `Your role is ${actor.role}.` });
  }
  return actor;
}

/** Answers a new session and sets the dashboard's cookie to it. */
export function sessionAnswer(
  c: Context,
  site: SiteAddress,
  user: User,
  issued: IssuedToken,
  secure: boolean,
  status: 200 | 201 = 200,
) {
  setCookie(c, sessionCookie, issued.secret, {
    httpOnly: true,
    sameSite: "Strict",
    // Secure whenever the dashboard is reached over HTTPS, directly or through a trusted proxy that says so.
    secure: secure || requestProtocol(requestFacts(c), site) === "https:",
    path: "/",
    expires: new Date(issued.token.expiresAt),
  });
  const body: SessionResponse = { user, token: issued.secret, expiresAt: issued.token.expiresAt };
  return c.json(body, status);
}

export function authRoutes(routes: ApiRoutes): void {
  const { accounts, secureCookies, site } = routes.deps;
  routes.add(
    {
      method: "post",
      path: "/auth/login",
      summary:
        "Sign in; answers a session token and sets the session cookie. Failures are throttled per account and per client address (429 with Retry-After)",
      tag: "accounts",
      auth: false,
      body: loginSchema,
      response: sessionSchema,
      errors: [401, 429],
    },
    async (c) => {
      const { email, password } = await readJson(c, loginSchema);
      const address = clientAddress(requestFacts(c), site);
      const user = await accounts.login(email, password, address);
      const issued = await accounts.issue(user.id, "session", "session", undefined, tokenOrigin(c, site));
      return sessionAnswer(c, site, user, issued, secureCookies);
    },
  );
  routes.add(
    {
      method: "post",
      path: "/auth/logout",
      summary: "Revoke the current token and clear the session cookie",
      tag: "accounts",
      response: null,
    },
    async (c) => {
      await accounts.revoke(c.get("session").token.id);
      deleteCookie(c, sessionCookie, { path: "/" });
      return c.body(null, 204);
    },
  );
}
