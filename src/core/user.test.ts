import assert from "node:assert/strict";
import { test } from "node:test";
import { accessEnded, emailProblem, passwordProblem } from "./user.js";

test("emailProblem", () => {
  const cases: [unknown, string | undefined][] = [
    ["ada@example.com", undefined],
    ["a.b+c@sub.example.org", undefined],
    ["", "is required"],
    [undefined, "is required"],
    ["ada", "must be an email address such as ada@example.com"],
    ["ada@example", "must be an email address such as ada@example.com"],
    ["ada @example.com", "must be an email address such as ada@example.com"],
    [`${"a".repeat(243)}@example.com`, "must be at most 254 characters"],
  ];
  for (const [email, problem] of cases) assert.equal(emailProblem(email), problem, String(email));
});

test("passwordProblem", () => {
  const cases: [unknown, string | undefined][] = [
    ["12345678", undefined],
    ["x".repeat(256), undefined],
    ["1234567", "must be at least 8 characters"],
    ["x".repeat(257), "must be at most 256 characters"],
    [undefined, "is required"],
    [12345678, "is required"],
  ];
  for (const [password, problem] of cases) assert.equal(passwordProblem(password), problem, String(password));
});

test("accessEnded: revoked, expired or deactivated, in that order; a live token of an active user grants access", () => {
  const now = Date.parse("2026-01-01T00:00:00.000Z");
  const live = { expiresAt: "2026-01-02T00:00:00.000Z" };
  const active = { active: true };
  assert.equal(accessEnded(live, active, now), undefined);
  assert.match(accessEnded({ ...live, revokedAt: "2025-12-31T00:00:00.000Z" }, active, now) ?? "", /revoked/);
  assert.match(accessEnded({ expiresAt: "2026-01-01T00:00:00.000Z" }, active, now) ?? "", /expired/);
  assert.match(accessEnded(live, { active: false }, now) ?? "", /deactivated/);
  assert.match(accessEnded(live, undefined, now) ?? "", /deactivated/, "a user gone from the store");
});
