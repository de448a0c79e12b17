/**
 * Opening a port in the browser, through the server: the path form
 * /@owner/NAME/ports/PORT/... on the dashboard's own host, and the host form
 * PORT--NAME--owner.HOST where an admin set a wildcard host (portsHost).
 * Every request is checked against the port's share as it is now.
 *
 * The path form shares the dashboard's origin, so a page served there could
 * act with its viewer's session. For the owner that is their own code; for
 * anyone else the page is served sandboxed (CSP `sandbox` without
 * allow-same-origin): it runs in an opaque origin that the dashboard's
 * cookies (SameSite=Strict) never reach. Those viewers' own requests to the
 * port carry a ticket cookie scoped to the port's path (src/server/port-tickets.ts),
 * which a sandboxed page sends only over HTTPS (SameSite=None needs Secure).
 * The host form is an origin of its own: no sandbox; a viewer arrives there
 * through a hand-off (GET /environments/:id/ports/:port/open) that sets the
 * ticket cookie on that host.
 *
 * A response that streams and a WebSocket passed through are held in
 * OpenConnections with the viewer's session (a ticket names the session it
 * was issued to), or none for a public port's anonymous viewer, and with
 * what let them in (the owner, or the share): they end within 2 s of the
 * viewer's access ending or of the share, the site's settings or the
 * environment no longer allowing them, a WebSocket with close code 1008
 * and the reason.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { MiddlewareHandler } from "hono";
import type { Environment } from "../core/environment.js";
import { CvmError, isCvmError } from "../core/errors.js";
import { type PortAccess, type PortAddress, parsePortHost } from "../core/ports.js";
import { accessEnded, type User } from "../core/user.js";
import { type ProxyTarget, proxyHttp, proxyUpgrade } from "../ports/http-proxy.js";
import type { Actor } from "../server/audit-log.js";
import type { HeldSession } from "../server/open-connections.js";
import { sessionCookie } from "./contract.js";
import { holdPortConnection, schemeOf } from "./ports.js";
import { hostAllowed } from "./request-origin.js";
import { type ApiDeps, type AppEnv, requestSecret } from "./routes.js";
import { cookieValue, type Upgrades } from "./upgrade.js";

export const portCookie = "cvm_port";
/** How long a viewer's ticket cookie lasts before they pass through the dashboard again. */
const ticketCookieMs = 12 * 60 * 60_000;
const portPath = /^\/@([a-z0-9-]+)\/([a-z0-9-]+)\/ports\/(\d{1,5})(\/.*)?$/;
/** What a page served to someone other than its owner may do: anything but being of the dashboard's origin. */
const sandbox =
  "sandbox allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox allow-modals allow-downloads";

interface Addressed {
  address: PortAddress;
  form: "path" | "host";
  /** What the app sees as its path (and query). */
  appPath: string;
  /** Where the port is mounted on this host: the path form's prefix, "" on its own host. */
  prefix: string;
  /** A ticket handed over in the URL (host form), to be turned into a cookie. */
  handoff?: string;
}

/** The port a request is for, by its host (under the wildcard host) or its path; undefined for anything else. */
async function addressed(request: IncomingMessage, deps: ApiDeps): Promise<Addressed | undefined> {
  const url = new URL(request.url ?? "/", "http://localhost");
  const { portsHost } = await deps.settings.get();
  const byHost = parsePortHost(request.headers.host ?? "", portsHost);
  if (byHost) {
    const handoff = url.searchParams.get("cvm_ticket") ?? undefined;
    url.searchParams.delete("cvm_ticket");
    return { address: byHost, form: "host", appPath: `${url.pathname}${url.search}`, prefix: "", handoff };
  }
  const match = portPath.exec(url.pathname);
  // The path form is the server's own: a host it does not answer to falls through to the Host check (421).
  if (!match || !hostAllowed(request.headers.host, deps.site)) return undefined;
  const address = { handle: match[1], name: match[2], port: Number(match[3]) };
  return {
    address,
    form: "path",
    appPath: `${match[4] ?? "/"}${url.search}`,
    prefix: `/@${address.handle}/${address.name}/ports/${address.port}`,
  };
}

/** Who asks: a signed-in user (session or token), a ticket's viewer (while its session lasts), or nobody. */
async function viewerOf(
  request: IncomingMessage,
  deps: ApiDeps,
  environmentId: string,
  port: number,
  handoff?: string,
): Promise<{ user?: User; session?: HeldSession; by?: "session" | "ticket" }> {
  const secret = requestSecret(request.headers.authorization, cookieValue(request.headers.cookie, sessionCookie));
  if (secret) {
    const session = await deps.accounts.authenticate(secret).catch(() => undefined);
    if (session) return { user: session.user, session, by: "session" };
  }
  for (const ticket of [handoff, cookieValue(request.headers.cookie, portCookie)]) {
    const claims = deps.workspace.tickets.verify(ticket, environmentId, port);
    if (!claims) continue;
    const [session] = await deps.store.tokens.sessions([claims.tokenId]);
    if (session && session.user.id === claims.viewerId && !accessEnded(session.token, session.user, Date.now())) {
      return { user: session.user, session, by: "ticket" };
    }
  }
  return {};
}

function ticketCookie(request: IncomingMessage, value: string, path: string): string {
  const https = schemeOf(request) === "https";
  const sameSite = https ? "SameSite=None; Secure" : "SameSite=Lax";
  return `${portCookie}=${value}; Path=${path}; HttpOnly; ${sameSite}; Max-Age=${ticketCookieMs / 1000}`;
}

const page = (title: string, text: string) =>
  `<!doctype html><meta charset="utf-8"><title>${title}</title><body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>${title}</h1><p>${text}</p>`;

function answer(outgoing: ServerResponse, status: number, title: string, text: string, headers = {}): void {
  outgoing.writeHead(status, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", ...headers });
  outgoing.end(page(title, text));
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

interface Decision {
  access: PortAccess;
  environment: Environment;
  viewer?: User;
  actor?: Actor;
  /** The viewer's session, to hold what stays open with it; none for an anonymous viewer of a public port. */
  session?: HeldSession;
  /** Set-Cookie for the response, when the viewer should keep a ticket. */
  setCookie?: string;
  /** Where to send a viewer who must pass through the dashboard first (host form). */
  redirect?: string;
  connect(): Promise<Duplex>;
}

/** Holds a proxied request or WebSocket with its viewer and what let them in (see the header); answers the release. */
function holdProxied(
  deps: ApiDeps,
  decision: Decision,
  target: Addressed,
  address: string | undefined,
  end: (reason: string) => void,
): () => void {
  return holdPortConnection(
    deps,
    decision.session,
    {
      environment: decision.environment,
      port: target.address.port,
      bySharing: decision.access !== "owner",
      via: target.form,
      who: { actor: decision.actor, address },
    },
    end,
  );
}

async function decide(request: IncomingMessage, target: Addressed, deps: ApiDeps): Promise<Decision> {
  const { ports, tickets } = deps.workspace;
  const environment = await ports.resolve(target.address);
  const { port } = target.address;
  const { user, session, by } = await viewerOf(request, deps, environment.id, port, target.handoff);
  const access = await ports.access(environment, port, user);
  const actor: Actor | undefined = user ? { id: user.id, email: user.email, role: user.role } : undefined;
  const decision: Decision = {
    access,
    environment,
    viewer: user,
    actor,
    session,
    connect: () => ports.connect(environment, port, { actor, address: request.socket.remoteAddress }, target.form),
  };
  const mint = () =>
    session &&
    tickets.issue(
      { viewerId: session.user.id, tokenId: session.token.id, environmentId: environment.id, port },
      ticketCookieMs,
    );
  if (target.form === "path" && access === "shared" && by === "session") {
    decision.setCookie = ticketCookie(request, mint() as string, `${target.prefix}/`);
  }
  if (target.form === "host" && target.handoff && user && (access === "owner" || access === "shared")) {
    decision.setCookie = ticketCookie(request, mint() as string, "/");
  }
  if (target.form === "host" && access === "sign-in") {
    // The dashboard's own address, where the viewer's session cookie lives.
    const dashboard = deps.site.accessUrl.origin;
    decision.redirect = `${dashboard}/api/v1/environments/${environment.id}/ports/${port}/open?to=${encodeURIComponent(target.appPath)}`;
  }
  return decision;
}

/** Answers a request for a port, or passes it on when it is not one. */
export function portProxy(deps: ApiDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const bindings = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
    const incoming = bindings?.incoming;
    const outgoing = bindings?.outgoing;
    if (!incoming || !outgoing) return next();
    const target = await addressed(incoming, deps);
    if (!target) return next();
    await serve(incoming, outgoing, target, deps);
    return RESPONSE_ALREADY_SENT;
  };
}

async function serve(incoming: IncomingMessage, outgoing: ServerResponse, target: Addressed, deps: ApiDeps) {
  const { port } = target.address;
  // Relative links in the app need the trailing slash of its root.
  if (target.form === "path" && (incoming.url ?? "").split("?")[0] === target.prefix) {
    outgoing.writeHead(308, { location: `${target.prefix}/${(incoming.url ?? "").slice(target.prefix.length)}` });
    outgoing.end();
    return;
  }
  try {
    const decision = await decide(incoming, target, deps);
    const cookie: Record<string, string> = decision.setCookie ? { "set-cookie": decision.setCookie } : {};
    if (target.handoff && decision.setCookie) {
      // The ticket leaves the URL at once.
      outgoing.writeHead(303, { location: target.appPath, "cache-control": "no-store", ...cookie });
      outgoing.end();
      return;
    }
    if (decision.redirect) {
      outgoing.writeHead(302, { location: decision.redirect, "cache-control": "no-store" });
      outgoing.end();
      return;
    }
    if (decision.access === "sign-in") {
      answer(
        outgoing,
        401,
        "Sign in to open this port",
        'Port shared with signed-in users only. <a href="/">Sign in to cvm</a>, then open this page again.',
      );
      return;
    }
    if (decision.access === "not-found") {
      answer(outgoing, 404, "Not found", "No such port here.");
      return;
    }
    const socket = await decision.connect();
    const responseHeaders: Record<string, string> = { ...cookie };
    if (target.form === "path" && decision.access !== "owner") responseHeaders["content-security-policy"] = sandbox;
    const proxied: ProxyTarget = { socket, port, path: target.appPath, prefix: target.prefix, responseHeaders };
    const release = holdProxied(deps, decision, target, incoming.socket.remoteAddress, () => {
      socket.destroy();
      outgoing.destroy();
    });
    await proxyHttp(incoming, outgoing, proxied).finally(release);
  } catch (error) {
    if (!isCvmError(error)) deps.logger.error({ err: error, path: incoming.url }, "opening a port");
    const status = isCvmError(error) ? error.status : 500;
    const message = isCvmError(error) ? error.message : "The port could not be opened";
    answer(outgoing, status, status === 404 ? "Not found" : "Cannot open this port", escapeHtml(message));
  }
}

/** WebSockets to a port: the same address, the same rule, then the upgrade passed through. */
export function attachPortProxyUpgrades(upgrades: Upgrades, deps: ApiDeps): void {
  const targets = new WeakMap<IncomingMessage, Addressed>();
  upgrades.route(
    async (_url, request) => {
      const target = await addressed(request, deps);
      if (!target) return null;
      targets.set(request, target);
      return Object.assign([request.url ?? ""], { index: 0, input: request.url ?? "" }) as RegExpExecArray;
    },
    async (request, socket, head) => {
      const target = targets.get(request) as Addressed;
      const decision = await decide(request, target, deps);
      if (decision.access === "sign-in") throw new CvmError("UNAUTHORIZED", "Sign in to open this port");
      if (decision.access === "not-found") throw new CvmError("NOT_FOUND", "No such port here");
      const connection = await decision.connect();
      if (socket.destroyed) {
        connection.destroy();
        return;
      }
      const passed = proxyUpgrade(request, socket, head, {
        socket: connection,
        port: target.address.port,
        path: target.appPath,
        prefix: target.prefix,
      });
      const release = holdProxied(deps, decision, target, request.socket.remoteAddress, (reason) => passed.end(reason));
      socket.once("close", release);
    },
  );
}
