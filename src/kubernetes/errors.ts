/**
 * The API server's refusals, in its own words: an admission webhook's or Pod
 * Security's message reaches the user unchanged, inside a CvmError (the
 * provider) or as a check's evidence (the doctor).
 */

import { ApiException } from "@kubernetes/client-node";
import { CvmError, type ErrorCode } from "../core/errors.js";

function parsedBody(body: unknown): { message?: unknown } | undefined {
  if (typeof body !== "string") return body as { message?: unknown } | undefined;
  try {
    return JSON.parse(body) as { message?: unknown };
  } catch {
    return undefined;
  }
}

/** The Status message the API server answered with; else its status and body; else the error's own message. */
export function apiMessage(error: unknown): string {
  if (error instanceof ApiException) {
    const message = parsedBody(error.body)?.message;
    if (typeof message === "string" && message) return message;
    const text = typeof error.body === "string" && error.body ? `: ${error.body}` : "";
    return `HTTP ${error.code}${text}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** The HTTP status of a refusal: an API call's ApiException, or a watch's failed request (`statusCode`). */
export function statusOf(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  const status = (error as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

export const isNotFound = (error: unknown) => statusOf(error) === 404;
export const isConflict = (error: unknown) => statusOf(error) === 409;

const codeOfStatus: Record<number, ErrorCode> = {
  400: "BAD_REQUEST",
  401: "UNAVAILABLE",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  409: "CONFLICT",
  422: "BAD_REQUEST",
};

/** A refusal of `what` (creating the Pod, say) as the user sees it. */
export function clusterRefusal(what: string, error: unknown): CvmError {
  const status = statusOf(error);
  const code = status === undefined ? "UNAVAILABLE" : (codeOfStatus[status] ?? "UNAVAILABLE");
  return new CvmError(code, `The cluster refused ${what}: ${apiMessage(error)}`, { cause: error });
}
