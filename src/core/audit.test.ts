import assert from "node:assert/strict";
import { test } from "node:test";
import { auditChanges, auditTargetName } from "./audit.js";

test("auditChanges lists only the fields that changed, nested ones dotted, without bookkeeping", () => {
  const before = { runtime: "auto", limits: { maxCpu: 16, maxDiskGiB: 500 }, cvmEnabled: false, version: 3 };
  const after = {
    runtime: "userns",
    limits: { maxCpu: 8, maxDiskGiB: 500 },
    cvmEnabled: true,
    forced: true,
    version: 4,
  };
  assert.deepEqual(auditChanges(before, after), [
    { field: "runtime", before: "auto", after: "userns" },
    { field: "limits.maxCpu", before: "16", after: "8" },
    { field: "cvmEnabled", before: "false", after: "true" },
    { field: "forced", before: undefined, after: "true" },
  ]);
});

test("auditChanges of a creation lists every field as added; arrays are one value", () => {
  assert.deepEqual(auditChanges(null, { email: "ada@example.com", units: ["a", "b"] }), [
    { field: "email", before: undefined, after: "ada@example.com" },
    { field: "units", before: undefined, after: '["a","b"]' },
  ]);
});

test("auditTargetName names users by email, environments by name, and the settings", () => {
  const user = { email: "ada@example.com", role: "member" };
  assert.equal(
    auditTargetName({ target: "user/usr_1", before: user, after: { ...user, role: "site-admin" } }),
    "ada@example.com",
  );
  assert.equal(
    auditTargetName({ target: "environment/env_1", before: { name: "dev" }, after: { keepHome: true } }),
    "dev",
  );
  assert.equal(
    auditTargetName({ target: "settings/infrastructure", before: {}, after: {} }),
    "Infrastructure settings",
  );
  assert.equal(auditTargetName({ target: "token/tok_1", before: null, after: {} }), undefined);
});
