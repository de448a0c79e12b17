/**
 * The dashboard's one client: same-origin, the session in the HttpOnly
 * `cvm_session` cookie. A 401 while signed in means the session ended; the
 * session module listens for it.
 */

import { ApiError, CvmClient } from "../../src/client/index.js";
import type { ErrorBody } from "../../src/core/errors.js";

const unauthorizedListeners = new Set<(body: ErrorBody) => void>();

export const client = new CvmClient({
  baseUrl: "",
  onUnauthorized: (body) => {
    for (const listener of unauthorizedListeners) listener(body);
  },
});

export function onUnauthorized(listener: (body: ErrorBody) => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export { ApiError };

/** A sentence for a person, from whatever was thrown. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.body.detail ? `${error.message} (${error.body.detail})` : error.message;
  if (error instanceof TypeError) return "The server could not be reached. Check your connection and try again.";
  if (error instanceof Error) return error.message;
  return String(error);
}

/** "must be ..." under a field reads as a sentence of its own, like the hint beside it. */
const sentence = (detail: string) => detail.charAt(0).toUpperCase() + detail.slice(1);

/** The API's `validations`, keyed by field, for a form to put under each input. */
export function fieldErrors(error: unknown): Record<string, string> {
  if (!(error instanceof ApiError) || !error.body.validations) return {};
  return Object.fromEntries(error.body.validations.map((v) => [v.field, sentence(v.detail)]));
}

/**
 * Problems a form finds before sending (the same rules the server applies,
 * from src/core), in the API's own shape: the form shows them as it shows the
 * server's, and no request is made that would only be refused.
 */
export function invalidFields(problems: Record<string, string | undefined>): ApiError | undefined {
  const validations = Object.entries(problems)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([field, detail]) => ({ field, detail }));
  if (validations.length === 0) return undefined;
  return new ApiError(400, { message: "Some fields need a change", validations });
}
