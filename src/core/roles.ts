/**
 * Roles and what each may do, as one table. A member touches only its own
 * environments; everything cluster-wide belongs to site admins and managers.
 */

export const roles = ["site-admin", "site-manager", "member"] as const;
export type Role = (typeof roles)[number];

export type Permission =
  | "environments:own"
  | "environments:all"
  | "settings:read"
  | "settings:write"
  | "users:read"
  | "users:write"
  | "audit:read"
  | "reconcile"
  | "backup";

const grants: Record<Role, readonly Permission[]> = {
  "site-admin": [
    "environments:own",
    "environments:all",
    "settings:read",
    "settings:write",
    "users:read",
    "users:write",
    "audit:read",
    "reconcile",
    // A backup holds every password hash and sealed secret: the admins' alone.
    "backup",
  ],
  "site-manager": [
    "environments:own",
    "environments:all",
    "settings:read",
    "settings:write",
    "users:read",
    "audit:read",
    "reconcile",
  ],
  member: ["environments:own"],
};

export function can(role: Role, permission: Permission): boolean {
  return grants[role].includes(permission);
}

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (roles as readonly string[]).includes(value);
}

/** Whether the Manage menu (settings, users, audit) exists for this role. */
export function seesManage(role: Role): boolean {
  return can(role, "settings:read");
}
