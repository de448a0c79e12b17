/**
 * Checks the server's answers against its own OpenAPI document, so the
 * document cannot drift from what the routes send. The operation is looked up
 * by method and path, the status must be one the operation documents (a 5xx
 * may fall to `default`; a 4xx must be listed), and the body must match the
 * documented schema: a JSON body whole, an NDJSON stream line by line.
 * Unknown routes must answer the error body. The schemas are read from the
 * document itself (converted back with zod's fromJSONSchema), so what is
 * checked is what clients are told.
 *
 * The test servers run with it (`npm test` sets CVM_CHECK_RESPONSES=1, see
 * src/api/app.ts); a production server never pays for it.
 */

import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import type { JsonSchema, OpenApiDocument, Operation } from "./openapi.js";

/** What a check found wrong, ready to read: `POST /api/v1/users 201: role: Invalid option...`. */
export type Mismatch = string;

interface Route {
  template: string;
  pattern: RegExp;
  /** Literal segments win over parameters: /users/me before /users/{id}. */
  literals: number;
  operations: Record<string, Operation>;
}

const ndjsonType = "application/x-ndjson";
const jsonType = "application/json";

function routeOf(template: string, operations: Record<string, Operation>): Route {
  const segments = template.split("/");
  const pattern = segments.map((s) => (/^\{\w+\}$/.test(s) ? "[^/]+" : s.replace(/[.*+?^$()|[\]\\]/g, "\\$&")));
  return {
    template,
    pattern: new RegExp(`^${pattern.join("/")}/?$`),
    literals: segments.filter((s) => !s.startsWith("{")).length,
    operations,
  };
}

const describeIssues = (error: z.ZodError) =>
  error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.join(".") || "(body)"}: ${issue.message}`)
    .join("; ");

/** The schema of one answer, as the document states it; looked up once per operation and status. */
export class ResponseChecker {
  private readonly routes: Route[];
  private readonly compiled = new Map<JsonSchema, z.ZodType>();
  private readonly errorBody: JsonSchema | undefined;

  constructor(document: OpenApiDocument) {
    this.routes = Object.entries(document.paths)
      .map(([template, operations]) => routeOf(template, operations))
      .sort((a, b) => b.literals - a.literals);
    // Every operation documents its errors with the one error body: take it from any of them.
    const anyDefault = Object.values(document.paths)
      .flatMap((operations) => Object.values(operations))
      .find((operation) => operation.responses.default)?.responses.default;
    this.errorBody = anyDefault?.content?.[jsonType]?.schema;
  }

  /**
   * The schema the body must match, or a mismatch when the status (or the
   * content type) is not documented at all.
   */
  schemaFor(
    method: string,
    path: string,
    status: number,
    contentType: string,
  ): { schema?: z.ZodType; where: string } | { mismatch: Mismatch } {
    const verb = method.toLowerCase();
    const route = this.routes.find((r) => r.operations[verb] && r.pattern.test(path));
    const where = `${method.toUpperCase()} ${route?.template ?? path} ${status}`;
    if (!route) {
      // Not a documented route: it can only be refused, in the error body.
      if (status < 400) return { mismatch: `${where}: answered ${status} on a route the document does not list` };
      return { schema: this.errorBody && this.compile(this.errorBody), where };
    }
    const responses = route.operations[verb].responses;
    const documented = responses[String(status)] ?? (status >= 500 ? responses.default : undefined);
    if (!documented) {
      const listed = Object.keys(responses).join(", ");
      return { mismatch: `${where}: status ${status} is not documented for this operation (it lists ${listed})` };
    }
    if (!documented.content) return { where };
    const type = contentType.split(";")[0].trim();
    const media = documented.content[type];
    if (!media) {
      const listed = Object.keys(documented.content).join(", ");
      return { mismatch: `${where}: answered ${type || "no content type"}, documented ${listed}` };
    }
    return { schema: media.schema && this.compile(media.schema), where };
  }

  /** Checks one JSON text (a body, or one NDJSON line) against a schema from schemaFor. */
  checkValue(schema: z.ZodType, where: string, text: string): Mismatch | undefined {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return `${where}: the body is not JSON: ${text.slice(0, 200)}`;
    }
    const result = schema.safeParse(value);
    if (result.success) return undefined;
    return `${where}: ${describeIssues(result.error)} (in ${text.slice(0, 300)})`;
  }

  private compile(schema: JsonSchema): z.ZodType {
    let compiled = this.compiled.get(schema);
    if (!compiled) {
      compiled = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
      this.compiled.set(schema, compiled);
    }
    return compiled;
  }
}

/** Splits a byte stream into lines and checks each one as it passes, unchanged. */
function checkedLines(onLine: (line: string) => Mismatch | undefined): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  let buffered = "";
  const take = (controller: TransformStreamDefaultController<Uint8Array>, final: boolean) => {
    const lines = buffered.split("\n");
    buffered = final ? "" : (lines.pop() ?? "");
    for (const line of lines) {
      if (!line.trim()) continue;
      const problem = onLine(line);
      if (problem) {
        controller.error(new Error(problem));
        return;
      }
    }
  };
  return new TransformStream({
    transform(chunk, controller) {
      buffered += decoder.decode(chunk, { stream: true });
      take(controller, false);
      controller.enqueue(chunk);
    },
    flush(controller) {
      buffered += decoder.decode();
      take(controller, true);
    },
  });
}

/**
 * A middleware for the API's paths (/api/*) that checks every answer. A JSON answer
 * that does not match is replaced by a 500 naming the mismatch; a stream is
 * cut at the first line that does not. Either way `onMismatch` hears of it.
 */
export function responseConformance(
  document: () => OpenApiDocument,
  onMismatch: (mismatch: Mismatch) => void,
): MiddlewareHandler {
  let checker: ResponseChecker | undefined;
  return async (c, next) => {
    await next();
    checker ??= new ResponseChecker(document());
    const check = checker;
    const { status } = c.res;
    const contentType = c.res.headers.get("content-type") ?? "";
    const found = check.schemaFor(c.req.method, c.req.path, status, contentType);
    const refuse = (mismatch: Mismatch) => {
      onMismatch(mismatch);
      c.res = undefined;
      c.res = c.json({ message: "The answer does not match the OpenAPI document", detail: mismatch }, 500);
    };
    if ("mismatch" in found) return refuse(found.mismatch);
    const { schema, where } = found;
    if (!schema || !c.res.body) return;
    if (contentType.startsWith(ndjsonType)) {
      const checked = c.res.body.pipeThrough(
        checkedLines((line) => {
          const mismatch = check.checkValue(schema, where, line);
          if (mismatch) onMismatch(mismatch);
          return mismatch;
        }),
      );
      const { headers } = c.res;
      c.res = undefined;
      c.res = new Response(checked, { status, headers });
      return;
    }
    // Other bodies (a file, plain text) are checked for their content type alone, above.
    if (!contentType.startsWith(jsonType)) return;
    const mismatch = check.checkValue(schema, where, await c.res.clone().text());
    if (mismatch) refuse(mismatch);
  };
}
