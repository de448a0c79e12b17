import assert from "node:assert/strict";
import { test } from "node:test";
import { CvmError, errorStatus, invalid, isCvmError, notFound } from "./errors.js";

test("every code maps to its status, and bodies carry only what was given", () => {
  for (const [code, status] of Object.entries(errorStatus) as [keyof typeof errorStatus, number][]) {
    const error = new CvmError(code, "m");
    assert.equal(error.status, status, code);
    assert.deepEqual(error.toBody(), { message: "m" });
  }
  const cause = new Error("driver said no");
  const error = new CvmError("CONFLICT", "taken", {
    detail: "d",
    validations: [{ field: "name", detail: "is taken" }],
    cause,
  });
  assert.deepEqual(error.toBody(), {
    message: "taken",
    detail: "d",
    validations: [{ field: "name", detail: "is taken" }],
  });
  assert.equal(error.cause, cause);
  assert.equal(JSON.stringify(error.toBody()).includes("driver"), false, "causes never reach the body");
  assert.deepEqual(new CvmError("BAD_REQUEST", "x", { validations: [] }).toBody(), { message: "x" });
});

test("invalid() is one 400 naming every field; notFound() a 404", () => {
  const error = invalid([
    { field: "name", detail: "is required" },
    { field: "cpu", detail: "must be a number" },
  ]);
  assert.equal(error.status, 400);
  assert.equal(error.message, "Invalid request: name: is required; cpu: must be a number");
  assert.equal(invalid([{ field: "a", detail: "b" }], "Bad settings").message, "Bad settings: a: b");
  assert.deepEqual(notFound("Environment").toBody(), { message: "Environment not found" });
  assert.equal(notFound("x").status, 404);
  assert.equal(isCvmError(error), true);
  assert.equal(isCvmError(new Error("x")), false);
});
