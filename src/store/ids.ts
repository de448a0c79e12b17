import { randomBytes } from "node:crypto";

export type IdPrefix = "usr" | "tok" | "env" | "bld" | "aud" | "ins";

/** A random id that says what it names: `env_` followed by 20 hex digits (80 bits). */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBytes(10).toString("hex")}`;
}
