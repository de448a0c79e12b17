/** The audit log: every change of settings, roles and environments. */

// The shapes themselves are zod schemas in ./schemas.ts; their types are re-exported here.
export type { AuditEntry, Page } from "./schemas.js";

import type { AuditEntry } from "./schemas.js";

export interface AuditFilter {
  actorId?: string;
  action?: string;
  target?: string;
  since?: string;
  until?: string;
}

/** One field an audited change touched, its values as text (absent where the field was). */
export interface AuditChange {
  field: string;
  before?: string;
  after?: string;
}

/** Bookkeeping that changes with every write, never what a person changed. */
const bookkeeping = new Set(["version", "updatedAt"]);

/** Objects become dotted fields (`limits.maxCpu`); anything else is one value, as JSON unless it is a string. */
function flatten(value: unknown, prefix = "", into = new Map<string, string>()): Map<string, string> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, into);
  } else if (prefix && value !== undefined) {
    into.set(prefix, typeof value === "string" ? value : JSON.stringify(value));
  }
  return into;
}

/**
 * The fields an entry's before and after differ in, in the order they were
 * written: what the audit log shows for a change instead of two JSON documents.
 */
export function auditChanges(before: unknown, after: unknown): AuditChange[] {
  const was = flatten(before);
  const is = flatten(after);
  const fields = [...new Set([...was.keys(), ...is.keys()])].filter((f) => !bookkeeping.has(f.split(".").at(-1) ?? f));
  return fields
    .filter((field) => was.get(field) !== is.get(field))
    .map((field) => ({ field, before: was.get(field), after: is.get(field) }));
}

const record = (value: unknown) =>
  value !== null && typeof value === "object" ? (value as Record<string, unknown>) : undefined;

/**
 * The name of what an entry changed, as a person knows it: a user's email, an
 * environment's name (both recorded in the entry itself), the settings' title.
 */
export function auditTargetName(entry: Pick<AuditEntry, "target" | "before" | "after">): string | undefined {
  const [kind] = entry.target.split("/");
  if (entry.target === "settings/infrastructure") return "Infrastructure settings";
  const key = kind === "user" ? "email" : kind === "environment" ? "name" : undefined;
  if (!key) return undefined;
  const name = record(entry.after)?.[key] ?? record(entry.before)?.[key];
  return typeof name === "string" ? name : undefined;
}
