/** The OpenAPI 3.1 document, generated from the routes' own zod schemas. */

import { z } from "zod";
import { apiPrefix, sessionCookie } from "./contract.js";
import type { RouteDoc } from "./routes.js";
import { errorBodySchema } from "./schemas.js";

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as JsonSchema;
  return rest;
}

const errorResponse = {
  description: "An error: { message, detail?, validations?: [{ field, detail }] }",
  content: { "application/json": { schema: jsonSchema(errorBodySchema, "output") } },
};

function successResponse(doc: RouteDoc): Record<string, unknown> {
  const { response } = doc;
  if (response === null) return { description: "Done; no body" };
  if (response === "websocket") return { description: "Switching to the WebSocket protocol described above" };
  if (response === "text")
    return { description: "Plain text", content: { "text/plain": { schema: { type: "string" } } } };
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

export function openApiDocument(docs: readonly RouteDoc[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const doc of docs) {
    const path = `${apiPrefix}${doc.path.replace(/:(\w+)/g, "{$1}")}`;
    const operation: Record<string, unknown> = {
      operationId: `${doc.method}${doc.path.replace(/[/:](\w)/g, (_m, c: string) => c.toUpperCase()).replace(/[^\w]/g, "")}`,
      summary: doc.summary,
      tags: [doc.tag],
      parameters: parameters(doc),
      responses: {
        [String(doc.status ?? (doc.response === null ? 204 : 200))]: successResponse(doc),
        default: errorResponse,
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
