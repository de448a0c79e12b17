/**
 * The OpenAPI 3.1 document, generated from the routes' own zod schemas
 * (src/api/schemas.ts): the request bodies and query strings the routes
 * validate, the bodies they answer, and the error body for each error status
 * a route answers. The tests check every answer against it (./conformance.ts).
 */

import { z } from "zod";
import { apiPrefix, sessionCookie } from "./contract.js";
import { type ErrorStatus, errorStatuses, type RouteDoc } from "./routes.js";
import { errorBodySchema } from "./schemas.js";

export type JsonSchema = Record<string, unknown>;

/** An answer as the document describes it: a schema per content type, none for an empty body. */
export interface ResponseObject {
  description: string;
  content?: Record<string, { schema: JsonSchema }>;
  headers?: Record<string, { description: string; required: boolean; schema: JsonSchema }>;
}

export interface Operation {
  operationId: string;
  summary: string;
  tags: string[];
  parameters: unknown[];
  security?: unknown[];
  requestBody?: unknown;
  /** By status (`"200"`, `"404"`), and `default` for the 5xx every route may answer. */
  responses: Record<string, ResponseObject>;
}

export interface OpenApiDocument {
  openapi: "3.1.0";
  info: Record<string, unknown>;
  servers: unknown[];
  security: unknown[];
  components: Record<string, unknown>;
  /** By path template (`/api/v1/environments/{ref}`), then by method. */
  paths: Record<string, Record<string, Operation>>;
}

function jsonSchema(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as JsonSchema;
  return rest;
}

const errorContent = { "application/json": { schema: jsonSchema(errorBodySchema, "output") } };

const errorMeanings: Record<ErrorStatus | "default", string> = {
  400: "Invalid input: `validations` names each field and what is wrong with it",
  401: "Not signed in, or the token is unknown, expired or revoked",
  403: "Signed in, but the role may not do this; or a write signed in by the session cookie came from another site",
  404: "Not found, or not yours to see",
  409: "Not possible in the current state (the message says why)",
  413: "The request body is too large (the message gives the limit)",
  415: "The request body is not JSON: send content-type: application/json",
  421: "The Host header does not name this server (its --access-url); DNS rebinding is refused",
  429: "Too many failed attempts: wait the seconds the Retry-After header gives",
  default: "An internal error (500), or the server is starting or cannot reach its provider (503)",
};

const retryAfter = {
  "Retry-After": {
    description: "Seconds until an attempt may succeed",
    required: true,
    schema: { type: "integer", minimum: 1 },
  },
};

const errorResponse = (status: ErrorStatus | "default"): ResponseObject => ({
  description: `${errorMeanings[status]}. Body: { message, detail?, validations?: [{ field, detail }] }`,
  content: errorContent,
  ...(status === 429 ? { headers: retryAfter } : {}),
});

function successResponse(doc: RouteDoc): ResponseObject {
  const { response } = doc;
  if (response === null) return { description: "Done; no body" };
  if (response === "websocket") return { description: "Switching to the WebSocket protocol described above" };
  if (response === "text")
    return { description: "Plain text", content: { "text/plain": { schema: { type: "string" } } } };
  if ("binary" in response) {
    return {
      description: "A file, as bytes",
      content: { [response.binary]: { schema: { type: "string", contentMediaType: response.binary } } },
    };
  }
  if ("ndjson" in response) {
    return {
      description: "A stream of JSON objects, one per line",
      content: { "application/x-ndjson": { schema: jsonSchema(response.ndjson, "output") } },
    };
  }
  return { description: "OK", content: { "application/json": { schema: jsonSchema(response, "output") } } };
}

function parameters(doc: RouteDoc): unknown[] {
  const path = [...doc.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
    name,
    in: "path",
    required: true,
    schema: { type: "string" },
  }));
  if (!doc.query) return path;
  const query = jsonSchema(doc.query, "input") as { properties?: Record<string, JsonSchema>; required?: string[] };
  const fromQuery = Object.entries(query.properties ?? {}).map(([name, schema]) => {
    const { description, ...rest } = schema;
    return { name, in: "query", required: query.required?.includes(name) ?? false, description, schema: rest };
  });
  return [...path, ...fromQuery];
}

export function openApiDocument(docs: readonly RouteDoc[], version: string): OpenApiDocument {
  const paths: OpenApiDocument["paths"] = {};
  for (const doc of docs) {
    const path = `${apiPrefix}${doc.path.replace(/:(\w+)/g, "{$1}")}`;
    const operation: Operation = {
      operationId: `${doc.method}${doc.path.replace(/[/:](\w)/g, (_m, c: string) => c.toUpperCase()).replace(/[^\w]/g, "")}`,
      summary: doc.summary,
      tags: [doc.tag],
      parameters: parameters(doc),
      responses: {
        [String(doc.status ?? (doc.response === null ? 204 : 200))]: successResponse(doc),
        ...Object.fromEntries(errorStatuses(doc).map((status) => [String(status), errorResponse(status)])),
        default: errorResponse("default"),
      },
    };
    if (doc.auth === false) operation.security = [];
    if (doc.body) {
      operation.requestBody = {
        required: true,
        content: { "application/json": { schema: jsonSchema(doc.body, "input") } },
      };
    }
    paths[path] = { ...paths[path], [doc.method]: operation };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "cvm",
      version,
      description: "Self-hosted developer environments and container-based virtual machines.",
    },
    servers: [{ url: "/" }],
    security: [{ bearer: [] }, { session: [] }],
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "A session or API token: cvm_..." },
        session: { type: "apiKey", in: "cookie", name: sessionCookie },
      },
    },
    paths,
  };
}
