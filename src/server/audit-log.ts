/** Writes the audit log: who changed what, and how it looked before and after. */

import type { AuditEntry } from "../core/audit.js";
import type { Store } from "../core/store.js";
import type { User } from "../core/user.js";

export type Actor = Pick<User, "id" | "email" | "role">;

export class AuditLog {
  constructor(private readonly store: Store) {}

  record(actor: Actor, action: string, target: string, before: unknown, after: unknown): Promise<AuditEntry> {
    return this.store.audit.append({
      at: new Date().toISOString(),
      actorId: actor.id,
      actorEmail: actor.email,
      action,
      target,
      before: before ?? null,
      after: after ?? null,
    });
  }
}
