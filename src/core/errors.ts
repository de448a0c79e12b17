/**
 * The one error vocabulary of cvm. Every layer throws CvmError with a code from
 * this table; the HTTP edge maps the code to a status and nothing else formats
 * errors. Anything that is not a CvmError is an internal error: logged with its
 * cause, answered as a 500 without internals.
 */

import type { ErrorBody, Validation } from "./schemas.js";

// The body's shape is a zod schema in ./schemas.ts (the OpenAPI document shows it); its types are re-exported here.
export type { ErrorBody, Validation } from "./schemas.js";

export const errorStatus = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  MISDIRECTED: 421,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export class CvmError extends Error {
  readonly code: ErrorCode;
  readonly detail?: string;
  readonly validations?: Validation[];
  /** Seconds until trying again may succeed (a 429's Retry-After). */
  readonly retryAfterSeconds?: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: { detail?: string; validations?: Validation[]; cause?: unknown; retryAfterSeconds?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "CvmError";
    this.code = code;
    this.detail = options.detail;
    this.validations = options.validations;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  get status(): number {
    return errorStatus[this.code];
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { message: this.message };
    if (this.detail !== undefined) body.detail = this.detail;
    if (this.validations?.length) body.validations = this.validations;
    return body;
  }
}

/** A 400 listing every field that failed, so a form can mark each one. */
export function invalid(validations: Validation[], message = "Invalid request"): CvmError {
  const fields = validations.map((v) => `${v.field}: ${v.detail}`).join("; ");
  return new CvmError("BAD_REQUEST", `${message}: ${fields}`, { validations });
}

export function notFound(what: string): CvmError {
  return new CvmError("NOT_FOUND", `${what} not found`);
}

export function isCvmError(error: unknown): error is CvmError {
  return error instanceof CvmError;
}
