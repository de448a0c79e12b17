/**
 * The HTTP application: /healthz, /metrics, /api/v1 (one file per resource)
 * and its OpenAPI document, and the dashboard (src/api/dashboard.ts). One error handler and
 * one not-found handler answer every failure. Every request passes the Host
 * check, every write the cross-site check (./request-guard.ts), and every
 * answer carries the security headers (a CSP that keeps the dashboard to its
 * own scripts and out of frames). Under test, every answer is checked
 * against the OpenAPI document (src/api/conformance.ts).
 */

import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import { secureHeaders } from "hono/secure-headers";
import { z } from "zod";
import { CvmError } from "../core/errors.js";
import { cvmVersion } from "../core/version.js";
import { adminRoutes } from "./admin.js";
import { auditRoutes } from "./audit.js";
import { authRoutes } from "./auth.js";
import { type Mismatch, responseConformance } from "./conformance.js";
import { apiPrefix } from "./contract.js";
import { dashboard } from "./dashboard.js";
import { environmentRoutes } from "./environments.js";
import { errorHandler, notFoundHandler } from "./errors.js";
import { eventRoutes } from "./events.js";
import { idleRoutes } from "./idle.js";
import { metricsEndpoint } from "./metrics-endpoint.js";
import { type OpenApiDocument, openApiDocument } from "./openapi.js";
import { poolRoutes } from "./pools.js";
import { portProxy } from "./port-proxy.js";
import { portRoutes } from "./ports.js";
import { crossSiteCheck, hostCheck } from "./request-guard.js";
import { type ApiDeps, ApiRoutes, type AppEnv } from "./routes.js";
import { buildInfoSchema } from "./schemas.js";
import { settingsRoutes } from "./settings.js";
import { setupRoutes } from "./setup.js";
import { sshRoutes } from "./ssh.js";
import { supervisorReportRoutes } from "./supervisor-reports.js";
import { documentTerminal } from "./terminal.js";
import { tokenRoutes } from "./tokens.js";
import { usageRoutes } from "./usage.js";
import { userRoutes } from "./users.js";

const maxBodyBytes = 1024 * 1024;

export interface ApiApp {
  app: Hono<AppEnv>;
  routes: ApiRoutes;
}

export interface AppOptions {
  webRoot?: string;
  /**
   * Check every answer under /api against the OpenAPI document, and call this
   * with each mismatch (the answer itself becomes a 500 naming it). Default:
   * on when CVM_CHECK_RESPONSES=1 (`npm test` sets it), failing loudly.
   */
  onMismatch?: (mismatch: Mismatch) => void;
  /** /metrics: a Bearer token it requires, and whether it is served on an address of its own instead. */
  metrics?: { token?: string; ownAddress?: boolean };
}

/**
 * A mismatch under test: logged, and thrown out of the request so the test
 * runner fails whichever test was running, even one that never reads the answer.
 */
function failLoudly(deps: ApiDeps): ((mismatch: Mismatch) => void) | undefined {
  if (process.env.CVM_CHECK_RESPONSES !== "1") return undefined;
  return (mismatch) => {
    deps.logger.error({ mismatch }, "an answer does not match the OpenAPI document");
    setImmediate(() => {
      throw new Error(`An answer does not match the OpenAPI document: ${mismatch}`);
    });
  };
}

/**
 * The dashboard loads only its own scripts and styles (xterm.js adds a style
 * element, hence inline styles), talks only to this server (its WebSocket
 * included: 'self' covers ws: and wss: of the same host), and is never framed.
 */
export const securityHeaders = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'", "'unsafe-inline'"],
    imgSrc: ["'self'", "data:"],
    fontSrc: ["'self'", "data:"],
    connectSrc: ["'self'"],
    objectSrc: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
  },
  xFrameOptions: "DENY",
  referrerPolicy: "same-origin",
  // Browsers heed it only over HTTPS; subdomains are not cvm's to speak for.
  strictTransportSecurity: "max-age=15552000",
});

export function createApp(deps: ApiDeps, options: AppOptions = {}): ApiApp {
  const app = new Hono<AppEnv>();
  const { metrics } = deps;
  let document: OpenApiDocument | undefined;
  const documentOf = (routes: ApiRoutes) => {
    document ??= openApiDocument(routes.docs, cvmVersion);
    return document;
  };

  app.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    // The matched pattern, never the raw path, so the label set stays small.
    const matched = routePath(c);
    const route = matched.endsWith("*") ? "unmatched" : matched;
    metrics.httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
    const seconds = (performance.now() - started) / 1000;
    metrics.httpDuration.observe({ method: c.req.method, route }, seconds);
    // Changes are worth a line each; reads only when debugging.
    const level = c.req.method === "GET" || c.req.method === "HEAD" ? "debug" : "info";
    deps.logger[level](
      { method: c.req.method, route, status: c.res.status, ms: Math.round(seconds * 1000) },
      "request",
    );
  });

  // A port's own host (under the wildcard host) and /@owner/NAME/ports/PORT/ belong to the environment's app.
  app.use("*", portProxy(deps));
  app.use("*", hostCheck(deps.site));
  app.use("*", securityHeaders);

  app.get("/healthz", (c) => c.json({ ok: true }));
  // Served on its own address, /metrics is not here at all (and not a page of the dashboard's either).
  if (options.metrics?.ownAddress) app.get("/metrics", notFoundHandler);
  else app.get("/metrics", metricsEndpoint(metrics, options.metrics?.token));

  const api = new Hono<AppEnv>();
  api.use(
    "*",
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: () => {
        throw new CvmError("PAYLOAD_TOO_LARGE", `Request bodies are limited to ${maxBodyBytes} bytes`);
      },
    }),
  );
  api.use("*", crossSiteCheck(deps.site));
  const routes = new ApiRoutes(api, deps);
  const onMismatch = options.onMismatch ?? failLoudly(deps);
  if (onMismatch)
    app.use(
      "/api/*",
      responseConformance(() => documentOf(routes), onMismatch),
    );
  for (const register of [
    setupRoutes,
    authRoutes,
    userRoutes,
    tokenRoutes,
    settingsRoutes,
    poolRoutes,
    auditRoutes,
    environmentRoutes,
    eventRoutes,
    adminRoutes,
    supervisorReportRoutes,
    documentTerminal,
    sshRoutes,
    portRoutes,
    idleRoutes,
    usageRoutes,
  ]) {
    register(routes);
  }
  routes.add(
    {
      method: "get",
      path: "/openapi.json",
      summary: "This document",
      tag: "meta",
      auth: false,
      response: z.looseObject({ openapi: z.string(), paths: z.record(z.string(), z.unknown()) }),
    },
    (c) => c.json(documentOf(routes)),
  );
  routes.add(
    {
      method: "get",
      path: "/buildinfo",
      summary: "Which cvm this server is: its version",
      tag: "meta",
      auth: false,
      response: buildInfoSchema,
    },
    (c) => c.json({ version: cvmVersion }),
  );
  api.all("*", notFoundHandler);
  app.route(apiPrefix, api);
  // Other API versions, and anything else under /api, are not the dashboard's pages.
  app.all("/api/*", notFoundHandler);

  app.route("/", dashboard({ webRoot: options.webRoot, logger: deps.logger }));

  app.notFound(notFoundHandler);
  app.onError(errorHandler(deps.logger));
  api.onError(errorHandler(deps.logger));
  return { app, routes };
}
