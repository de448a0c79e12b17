/**
 * The one place HTTP errors are formatted. A CvmError answers with its own
 * status and body; anything else is logged with its cause and stack and
 * becomes a 500 that tells nothing of the internals.
 */

import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "pino";
import { ZodError } from "zod";
import { CvmError, type ErrorBody, invalid, isCvmError } from "../core/errors.js";
import { validationsOf } from "./input.js";

/** Maps anything thrown to the CvmError the client sees, or undefined for an internal error. */
export function toCvmError(error: unknown): CvmError | undefined {
  if (isCvmError(error)) return error;
  if (error instanceof ZodError) return invalid(validationsOf(error.issues));
  if (error instanceof HTTPException) {
    const code = error.status === 413 ? "PAYLOAD_TOO_LARGE" : error.status === 401 ? "UNAUTHORIZED" : undefined;
    if (code) return new CvmError(code, error.message || "Request rejected", { cause: error });
  }
  return undefined;
}

/** The status and body for anything thrown; logs what is not a CvmError. */
export function errorAnswer(error: unknown, logger: Logger, where: Record<string, unknown>): [number, ErrorBody] {
  const known = toCvmError(error);
  if (known) return [known.status, known.toBody()];
  logger.error({ err: error, cause: (error as { cause?: unknown })?.cause, ...where }, "internal error");
  return [500, { message: "Internal error" }];
}

/** Headers an error answer carries besides its body: a 429's Retry-After. */
export function errorHeaders(error: unknown): Record<string, string> {
  const seconds = isCvmError(error) ? error.retryAfterSeconds : undefined;
  return seconds === undefined ? {} : { "retry-after": String(seconds) };
}

export function errorHandler(logger: Logger) {
  return (error: unknown, c: Context) => {
    const [status, body] = errorAnswer(error, logger, { method: c.req.method, path: c.req.path });
    return c.json(body, status as ContentfulStatusCode, errorHeaders(error));
  };
}

export function notFoundHandler(c: Context) {
  const error = new CvmError("NOT_FOUND", `No such route: ${c.req.method} ${c.req.path}`);
  return c.json(error.toBody(), 404);
}
