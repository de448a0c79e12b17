/**
 * What every request passes before a route sees it: a Host that names this
 * server (421 otherwise: DNS rebinding), and, for a write that is not
 * bearer-authenticated (the session cookie, or no credential at all), an
 * origin that is this server's own (403 otherwise: cross-site request
 * forgery). The origin check is Hono's own csrf middleware: it refuses the
 * content types a page on another site can send without a CORS preflight
 * unless Origin or Sec-Fetch-Site says the request came from this server;
 * every other type needs a preflight, which cvm never grants, and request
 * bodies must be JSON anyway (./input.ts).
 */

import type { TLSSocket } from "node:tls";
import type { HttpBindings } from "@hono/node-server";
import type { Context, MiddlewareHandler } from "hono";
import { csrf } from "hono/csrf";
import { HTTPException } from "hono/http-exception";
import { CvmError } from "../core/errors.js";
import { hostAllowed, originAllowed, type RequestFacts, requestHost, type SiteAddress } from "./request-origin.js";

export function requestFacts(c: Context): RequestFacts {
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
  return {
    // A request made in-process (app.request) has its host only in its URL.
    header: (name) => c.req.header(name) ?? (name === "host" ? new URL(c.req.url).host : undefined),
    remoteAddress: incoming?.socket?.remoteAddress,
    encrypted: Boolean((incoming?.socket as TLSSocket | undefined)?.encrypted),
  };
}

export function misdirected(host: string | undefined, site: SiteAddress): CvmError {
  return new CvmError("MISDIRECTED", `This server does not answer to the host ${JSON.stringify(host ?? "")}`, {
    detail: `Reach it at ${site.accessUrl.origin}, or start it with --access-url set to the URL you use.`,
  });
}

export function crossSite(): CvmError {
  return new CvmError("FORBIDDEN", "Cross-site request refused", {
    detail:
      "Writes signed in by the session cookie must come from this server's own pages; scripts use a Bearer token.",
  });
}

export function hostCheck(site: SiteAddress): MiddlewareHandler {
  return async (c, next) => {
    const host = requestHost(requestFacts(c), site);
    if (!hostAllowed(host, site)) throw misdirected(host, site);
    await next();
  };
}

const bearer = /^Bearer\s+\S+$/i;

export function crossSiteCheck(site: SiteAddress): MiddlewareHandler {
  const check = csrf({ origin: (origin, c) => originAllowed(origin, requestFacts(c), site) });
  return async (c, next) => {
    // A Bearer token is never sent by a browser on its own, so no other site can make one ride along.
    if (!bearer.test(c.req.header("authorization") ?? "")) {
      try {
        await check(c, async () => {});
      } catch (error) {
        if (error instanceof HTTPException && error.status === 403) throw crossSite();
        throw error;
      }
    }
    await next();
  };
}
