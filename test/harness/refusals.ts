/** What API tests assert of a refused request: the typed client's ApiError with the status expected. */

import assert from "node:assert/strict";
import { ApiError } from "../../src/client/index.js";

/** The error a request was refused with, once it is an ApiError of this status. */
export async function refused(promise: Promise<unknown>, status: number): Promise<ApiError> {
  const error = await promise.then(
    () => assert.fail(`expected ${status}, got success`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ApiError, `expected an ApiError, got ${error}`);
  assert.equal(error.status, status, `${error.status} ${JSON.stringify(error.body)}`);
  return error;
}
