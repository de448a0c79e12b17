/** The audit log: every change of settings, roles and environments. */

// The shapes themselves are zod schemas in ./schemas.ts; their types are re-exported here.
export type { AuditEntry, Page } from "./schemas.js";

export interface AuditFilter {
  actorId?: string;
  action?: string;
  target?: string;
  since?: string;
  until?: string;
}
