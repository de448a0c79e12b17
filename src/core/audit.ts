/** The audit log: every change of settings, roles and environments. */

export interface AuditEntry {
  id: string;
  at: string;
  actorId: string;
  actorEmail: string;
  /** A dotted verb such as `settings.update`, `user.set-role`, `environment.create`. */
  action: string;
  /** What was changed: `settings/infrastructure`, `user/<id>`, `environment/<id>`. */
  target: string;
  before: unknown;
  after: unknown;
}

export interface AuditFilter {
  actorId?: string;
  action?: string;
  target?: string;
  since?: string;
  until?: string;
}

export interface Page<T> {
  items: T[];
  /** Opaque; pass back to get the next page. Absent on the last page. */
  nextCursor?: string;
}
