import assert from "node:assert/strict";
import { test } from "node:test";
import { can, isRole, type Permission, type Role, roles, seesManage } from "./roles.js";

/** ARCHITECTURE.md's table: a member has only its own environments; a manager all but user roles. */
const expected: Record<Permission, Record<Role, boolean>> = {
  "environments:own": { "site-admin": true, "site-manager": true, member: true },
  "environments:all": { "site-admin": true, "site-manager": true, member: false },
  "settings:read": { "site-admin": true, "site-manager": true, member: false },
  "settings:write": { "site-admin": true, "site-manager": true, member: false },
  "users:read": { "site-admin": true, "site-manager": true, member: false },
  "users:write": { "site-admin": true, "site-manager": false, member: false },
  "audit:read": { "site-admin": true, "site-manager": true, member: false },
  reconcile: { "site-admin": true, "site-manager": true, member: false },
  backup: { "site-admin": true, "site-manager": false, member: false },
};

test("can: every role and permission as the table says", () => {
  for (const [permission, byRole] of Object.entries(expected) as [Permission, Record<Role, boolean>][]) {
    for (const role of roles) {
      assert.equal(can(role, permission), byRole[role], `${role} ${permission}`);
    }
  }
});

test("isRole: the three roles and nothing else", () => {
  for (const role of roles) assert.equal(isRole(role), true, role);
  for (const value of ["admin", "Site-Admin", "", "owner", "constructor", "toString", undefined, null, 1, {}]) {
    assert.equal(isRole(value), false, String(value));
  }
});

test("seesManage: admins and managers have the Manage menu, members do not", () => {
  assert.deepEqual(
    roles.map((role) => [role, seesManage(role)]),
    [
      ["site-admin", true],
      ["site-manager", true],
      ["member", false],
    ],
  );
});
