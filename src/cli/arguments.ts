/** Parsers for option values: a bad one is refused before any request is made, naming the flag. */

import { CvmError } from "../core/errors.js";

/** `--limit 5`: a whole number of at least 1. */
export function positiveWholeNumber(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1)
      throw new CvmError("BAD_REQUEST", `${flag} takes a whole number of at least 1, not ${value}`);
    return n;
  };
}
