/**
 * Reading a request: JSON bodies and query strings through zod schemas. Every
 * failure is one 400 whose `validations` name each field by its dotted path.
 */

import type { Context } from "hono";
import type { z } from "zod";
import { CvmError, invalid, type Validation } from "../core/errors.js";

interface Issue {
  code: string;
  path: PropertyKey[];
  message: string;
  keys?: string[];
}

function detailOf(issue: Issue): string {
  if (issue.code === "invalid_type" && issue.message.endsWith("received undefined")) return "is required";
  return issue.message.replace(/^Invalid input: /, "");
}

export function validationsOf(issues: readonly Issue[]): Validation[] {
  return issues.flatMap((issue) => {
    const base = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys" && issue.keys) {
      return issue.keys.map((key) => ({ field: base ? `${base}.${key}` : key, detail: "is not a known field" }));
    }
    return [{ field: base || "body", detail: detailOf(issue) }];
  });
}

export function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(validationsOf(result.error.issues as Issue[]), `Invalid ${what}`);
  return result.data;
}

/** `application/json`, or any `+json` type, with or without parameters. */
const jsonType = /^application\/([\w.-]+\+)?json\s*(;|$)/i;

/**
 * The JSON body, validated; an empty body counts as `{}`. A body of any other
 * type is a 415: a form or text/plain body is what another site's page can
 * send without asking, so none is ever read.
 */
export async function readJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const text = await c.req.text();
  let value: unknown = {};
  if (text.trim().length > 0) {
    if (!jsonType.test(c.req.header("content-type") ?? "")) {
      throw new CvmError("UNSUPPORTED_MEDIA_TYPE", "Request bodies are JSON: send content-type: application/json", {
        detail: `This request's content-type is ${JSON.stringify(c.req.header("content-type") ?? "(none)")}.`,
      });
    }
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw invalid(
        [{ field: "body", detail: `is not valid JSON (${(error as Error).message})` }],
        "Malformed request",
      );
    }
  }
  return parse(schema, value, "request");
}

export function readQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  return parse(schema, c.req.query(), "query");
}
