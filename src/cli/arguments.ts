/**
 * What the user typed, read and told back in their own words: a flag's value
 * is checked where it is read (`--memory: "abc" is not a number of GiB`, not
 * the API's `memoryGiB: expected number, received null`), and the API's
 * field errors are renamed to the flags and arguments that set those fields.
 */

import { ApiError } from "../client/index.js";
import { CvmError } from "../core/errors.js";

/**
 * A commander parser for a flag's number. Throws a CvmError, which commander
 * lets through, so it reads like every other error of cvm.
 */
export function numberFlag(flag: string, unit: string, options: { integer?: boolean } = {}) {
  return (value: string): number => {
    const number = Number(value);
    if (value.trim() === "" || !Number.isFinite(number)) {
      throw new CvmError("BAD_REQUEST", `${flag}: "${value}" is not a number of ${unit}`);
    }
    if (options.integer && !Number.isInteger(number)) {
      throw new CvmError("BAD_REQUEST", `${flag}: "${value}" is not a whole number of ${unit}`);
    }
    return number;
  };
}

/** `--limit 5`: a whole number of at least 1, refused before any request. */
export function positiveWholeNumber(flag: string, unit: string) {
  const parse = numberFlag(flag, unit, { integer: true });
  return (value: string): number => {
    const number = parse(value);
    if (number < 1)
      throw new CvmError("BAD_REQUEST", `${flag}: "${value}" is not a whole number of ${unit} of at least 1`);
    return number;
  };
}

/** `--env NAME=VALUE`, repeatable: each pair collected in order; one without a name and `=` is refused. */
export function namedValueFlag(flag: string) {
  return (pair: string, all: string[]): string[] => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(pair))
      throw new CvmError("BAD_REQUEST", `${flag}: "${pair}" is not NAME=VALUE`);
    return [...all, pair];
  };
}

/** API field → what the user typed to set it (`memoryGiB` → `--memory`). */
export type FieldNames = Record<string, string>;

/** Runs a request, answering its field errors in the names of the flags that set those fields. */
export async function inFlagTerms<T>(names: FieldNames, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (!(error instanceof ApiError) || !error.body.validations) throw error;
    const listed = `: ${error.body.validations.map((v) => `${v.field}: ${v.detail}`).join("; ")}`;
    const validations = error.body.validations.map((v) => ({ field: names[v.field] ?? v.field, detail: v.detail }));
    // The message lists the fields by the API's names too: it keeps its lead, and each flag is a line of its own.
    const { message } = error.body;
    const lead = message.endsWith(listed) ? message.slice(0, -listed.length) : message;
    throw new ApiError(error.status, { ...error.body, message: lead, validations });
  }
}
