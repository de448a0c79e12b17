/**
 * The API's WebSocket endpoints (the terminal, SSH, port connections) share
 * one 'upgrade' listener on the HTTP server: each claims its path. Every
 * upgrade passes the same Host check and is authenticated as the API
 * authenticates (a Bearer token, or the session cookie, which only the
 * dashboard's own origin may use), and a
 * refusal is the API's usual error body, written before any WebSocket exists.
 */

import type { IncomingMessage, Server } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { CvmError } from "../core/errors.js";
import type { Session } from "../server/accounts.js";
import { sessionCookie } from "./contract.js";
import { errorAnswer, errorHeaders } from "./errors.js";
import { crossSite, misdirected } from "./request-guard.js";
import { hostAllowed, originAllowed, type RequestFacts, requestHost } from "./request-origin.js";
import { type ApiDeps, requestSecret } from "./routes.js";

export type UpgradeHandler = (
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  match: RegExpExecArray,
  url: URL,
) => Promise<void>;

export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(";") ?? []) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return undefined;
}

/** Refuses an upgrade with the API's usual error body, before any WebSocket exists. */
export function refuse(socket: Duplex, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n${extra.join("")}connection: close\r\n\r\n${text}`,
  );
}

function upgradeFacts(request: IncomingMessage): RequestFacts {
  return {
    header: (name) => {
      const value = request.headers[name];
      return Array.isArray(value) ? value.join(", ") : value;
    },
    remoteAddress: request.socket.remoteAddress,
    encrypted: Boolean((request.socket as TLSSocket).encrypted),
  };
}

/**
 * The caller of an upgrade request, as the API's routes authenticate theirs:
 * the same Host check (421), and the session cookie only from this server's
 * own pages (403).
 */
export async function authenticateUpgrade(request: IncomingMessage, deps: ApiDeps): Promise<Session> {
  const facts = upgradeFacts(request);
  const host = requestHost(facts, deps.site);
  if (!hostAllowed(host, deps.site)) throw misdirected(host, deps.site);
  const cookie = cookieValue(request.headers.cookie, sessionCookie);
  const secret = requestSecret(request.headers.authorization, cookie);
  // A cookie rides along on any page's WebSocket; only this server's own pages may use it.
  // Browsers always send Origin on a WebSocket upgrade; `null` (a sandboxed frame, a file) is not ours.
  const origin = facts.header("origin");
  if (secret === cookie && origin !== undefined && !originAllowed(origin, facts, deps.site)) throw crossSite();
  return deps.accounts.authenticate(secret);
}

/** A path segment naming an environment (its id or the caller's own name for it). */
export function decodeRef(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new CvmError("BAD_REQUEST", "The environment reference in the path is not valid percent-encoding");
  }
}

/** What claims an upgrade: a path pattern, or a test of the whole request (a port's own host). */
export type UpgradeMatcher = RegExp | ((url: URL, request: IncomingMessage) => Promise<RegExpExecArray | null>);

export class Upgrades {
  private readonly routes: { matcher: UpgradeMatcher; handler: UpgradeHandler }[] = [];
  private readonly onUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

  constructor(
    private readonly server: Server,
    deps: ApiDeps,
  ) {
    this.onUpgrade = (request, socket, head) => {
      socket.on("error", () => socket.destroy());
      this.dispatch(request, socket, head).catch((error) => {
        const [status, body] = errorAnswer(error, deps.logger, { path: request.url, ws: true });
        refuse(socket, status, body, errorHeaders(error));
      });
    };
    server.on("upgrade", this.onUpgrade);
  }

  /** Claims upgrades that `matcher` matches; the first route to match, in the order added, serves it. */
  route(matcher: UpgradeMatcher, handler: UpgradeHandler): void {
    this.routes.push({ matcher, handler });
  }

  private async dispatch(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(request.url ?? "/", "http://localhost");
    for (const { matcher, handler } of this.routes) {
      const match = matcher instanceof RegExp ? matcher.exec(url.pathname) : await matcher(url, request);
      if (match) return handler(request, socket, head, match, url);
    }
    throw new CvmError("NOT_FOUND", `No WebSocket at ${url.pathname}`);
  }

  close(): void {
    this.server.off("upgrade", this.onUpgrade);
  }
}
