import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { CvmError } from "../core/errors.js";
import { parse, validationsOf } from "./input.js";

test("zod issues become validations named by dotted path; unknown keys and missing fields read plainly", () => {
  const schema = z.strictObject({
    name: z.string(),
    limits: z.strictObject({ maxCpu: z.number() }),
    tags: z.array(z.string()).optional(),
  });
  const result = schema.safeParse({ limits: { maxCpu: "8", extra: 1 }, tags: ["a", 2], color: "red" });
  assert.equal(result.success, false);
  const validations = validationsOf(result.error?.issues ?? []);
  assert.deepEqual(validations, [
    { field: "name", detail: "is required" },
    { field: "limits.maxCpu", detail: "expected number, received string" },
    { field: "limits.extra", detail: "is not a known field" },
    { field: "tags.1", detail: "expected string, received number" },
    { field: "color", detail: "is not a known field" },
  ]);
});

test("parse throws one 400 CvmError carrying every validation", () => {
  const error = (() => {
    try {
      parse(z.object({ a: z.number(), b: z.number() }), {}, "request");
    } catch (e) {
      return e;
    }
  })();
  assert.ok(error instanceof CvmError);
  assert.equal(error.status, 400);
  assert.deepEqual(
    error.validations?.map((v) => v.field),
    ["a", "b"],
  );
});
