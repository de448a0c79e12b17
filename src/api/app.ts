/**
 * The HTTP application: /healthz, /metrics, /api/v1 (one file per resource)
 * and its OpenAPI document, and the dashboard (src/api/dashboard.ts). One error handler and
 * one not-found handler answer every failure. Under test, every answer is
 * checked against the OpenAPI document (src/api/conformance.ts).
 */

import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import { z } from "zod";
import { CvmError } from "../core/errors.js";
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
import { type OpenApiDocument, openApiDocument } from "./openapi.js";
import { portProxy } from "./port-proxy.js";
import { portRoutes } from "./ports.js";
import { type ApiDeps, ApiRoutes, type AppEnv } from "./routes.js";
import { settingsRoutes } from "./settings.js";
import { setupRoutes } from "./setup.js";
import { sshRoutes } from "./ssh.js";
import { supervisorReportRoutes } from "./supervisor-reports.js";
import { documentTerminal } from "./terminal.js";
import { tokenRoutes } from "./tokens.js";
import { usageRoutes } from "./usage.js";
import { userRoutes } from "./users.js";

const version = "0.1.0";
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

export function createApp(deps: ApiDeps, options: AppOptions = {}): ApiApp {
  const app = new Hono<AppEnv>();
  const { metrics } = deps;
  let document: OpenApiDocument | undefined;
  const documentOf = (routes: ApiRoutes) => {
    document ??= openApiDocument(routes.docs, version);
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
  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/metrics", async (c) =>
    c.body(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType }),
  );

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
