import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { nodeLimits, raiseNodeLimits } from "./node-limits.js";

const root = process.getuid?.() === 0;

test("the per-user limits CVMs share end up at least at their minimums, and are never lowered", {
  skip: root ? false : "raising kernel limits needs root",
}, async () => {
  const before = await Promise.all(
    nodeLimits.map(async ({ key }) => Number(await readFile(`/proc/sys/${key.replaceAll(".", "/")}`, "utf8"))),
  );
  const changes = await raiseNodeLimits();
  assert.deepEqual(
    changes.filter((c) => c.problem),
    [],
  );
  for (const [i, { key, minimum }] of nodeLimits.entries()) {
    const now = Number(await readFile(`/proc/sys/${key.replaceAll(".", "/")}`, "utf8"));
    assert.ok(now >= minimum, `${key} = ${now}`);
    assert.ok(now >= before[i], `${key} was lowered`);
  }
});
