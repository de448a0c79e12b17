import assert from "node:assert/strict";
import { test } from "node:test";
import { duration, resources } from "./format.js";

test("duration reads as precisely as is worth it", () => {
  assert.equal(duration(420), "0.4 s");
  assert.equal(duration(12_300), "12 s");
  assert.equal(duration(185_000), "3 min 5 s");
  assert.equal(duration(2 * 3_600_000 + 5 * 60_000), "2 h 5 min");
  assert.equal(duration(-5), "0.0 s");
});

test("resources: one CPU, several CPUs", () => {
  assert.equal(resources({ cpu: 1, memoryGiB: 1, diskGiB: 5 }), "1 CPU · 1 GiB · 5 GiB disk");
  assert.equal(resources({ cpu: 2, memoryGiB: 4, diskGiB: 20 }), "2 CPUs · 4 GiB · 20 GiB disk");
});
