/**
 * How a resource file declares a route: one call registers the handler and
 * its documentation together, so the OpenAPI document lists every route there
 * is. Routes are signed-in unless they say `auth: false`.
 */

import type { Context, Hono } from "hono";
import { getCookie } from "hono/cookie";
import type { Logger } from "pino";
import type { z } from "zod";
import type { Provider } from "../core/provider.js";
import type { Store } from "../core/store.js";
import type { Accounts, Session } from "../server/accounts.js";
import type { AuditLog } from "../server/audit-log.js";
import type { EnvironmentService } from "../server/environments/index.js";
import type { EventBus } from "../server/event-bus.js";
import type { ServerMetrics } from "../server/metrics.js";
import type { OpenConnections } from "../server/open-connections.js";
import type { SettingsService } from "../server/settings-service.js";
import type { SetupCode } from "../server/setup-code.js";
import type { Workspace } from "../server/workspace.js";
import { sessionCookie } from "./contract.js";
import type { SiteAddress } from "./request-origin.js";

export interface ApiDeps {
  store: Store;
  provider: Provider;
  accounts: Accounts;
  audit: AuditLog;
  settings: SettingsService;
  environments: EnvironmentService;
  bus: EventBus;
  metrics: ServerMetrics;
  /** SSH, ports, and the account shells run as. */
  workspace: Workspace;
  logger: Logger;
  /** Every long-lived connection is held here, so that access ending ends it. */
  connections: OpenConnections;
  /** The first-run setup code. */
  setup: SetupCode;
  /** Where the server is reached: the Host and Origin checks, the client's address. */
  site: SiteAddress;
  /** Aborted when the server stops: ends every open stream. */
  shutdown: AbortSignal;
  /** Mark the session cookie Secure (when served over HTTPS). */
  secureCookies: boolean;
}

export type AppEnv = { Variables: { session: Session } };
export type AppContext = Context<AppEnv>;

export type Method = "get" | "post" | "put" | "patch" | "delete";

export interface RouteDoc {
  method: Method;
  /** Relative to /api/v1, in Hono's syntax (`/environments/:ref`). */
  path: string;
  summary: string;
  tag: string;
  /** Default true: a session cookie or Bearer token is required. */
  auth?: boolean;
  body?: z.ZodType;
  query?: z.ZodType;
  /** The success body: a schema, `null` for 204, or a streamed kind. */
  response: z.ZodType | null | { ndjson: z.ZodType } | { binary: string } | "websocket" | "text";
  status?: number;
  /**
   * The error statuses the route answers besides those its declaration
   * implies (see impliedErrors): a permission check's 403, a conflict's 409.
   * The tests fail on an error status a route does not document.
   */
  errors?: ErrorStatus[];
}

/** The 4xx statuses the API answers; 5xx are documented once, as every route's `default`. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 421 | 429;

/**
 * What a declaration implies: a body or query can be invalid (400), a body
 * too large (413) or not JSON (415), a signed-in route refuses a missing or
 * stale token (401), a write from another site is refused (403), a path
 * parameter names something that may not exist (404), and any request
 * naming a host that is not this server's is misdirected (421).
 */
export function errorStatuses(doc: RouteDoc): ErrorStatus[] {
  const implied: ErrorStatus[] = [421];
  if (doc.body || doc.query) implied.push(400);
  if (doc.auth !== false) implied.push(401);
  if (doc.method !== "get") implied.push(403);
  if (doc.path.includes(":")) implied.push(404);
  if (doc.body) implied.push(413, 415);
  return [...new Set([...implied, ...(doc.errors ?? [])])].sort((a, b) => a - b);
}

/** The secret a request carries: `Authorization: Bearer`, else the session cookie. */
export function requestSecret(authorization: string | undefined, cookie: string | undefined): string | undefined {
  const bearer = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
  return bearer ?? cookie;
}

export class ApiRoutes {
  readonly docs: RouteDoc[] = [];

  constructor(
    readonly app: Hono<AppEnv>,
    readonly deps: ApiDeps,
  ) {}

  add(doc: RouteDoc, handler: (c: AppContext) => Response | Promise<Response>): void {
    this.docs.push(doc);
    const { accounts } = this.deps;
    this.app.on(doc.method.toUpperCase(), doc.path, async (c) => {
      if (doc.auth !== false) {
        const secret = requestSecret(c.req.header("authorization"), getCookie(c, sessionCookie));
        c.set("session", await accounts.authenticate(secret));
      }
      return handler(c);
    });
  }

  /** Documents a route served outside Hono (the terminal's WebSocket upgrade). */
  document(doc: RouteDoc): void {
    this.docs.push(doc);
  }
}

/** A path parameter the route's pattern guarantees. */
export function param(c: AppContext, name: string): string {
  const value = c.req.param(name);
  if (value === undefined) throw new Error(`route has no :${name}`);
  return value;
}
