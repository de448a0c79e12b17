import assert from "node:assert/strict";
import { test } from "node:test";
import { emailProblem, passwordProblem } from "./user.js";

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
