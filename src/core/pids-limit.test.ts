import assert from "node:assert/strict";
import { test } from "node:test";
import { environmentPidsLimit, pidsLimitNote } from "./pids-limit.js";

test("0 sizes the limit to the node: an eighth of the lower of pid_max and threads-max, within 1024 and 32768", () => {
  const cases: [{ pidMax?: number; threadsMax?: number }, number][] = [
    [{ pidMax: 32_768, threadsMax: 192_729 }, 4096],
    [{ pidMax: 4_194_304, threadsMax: 192_729 }, 24_091],
    [{ pidMax: 4_194_304, threadsMax: 4_000_000 }, 32_768],
    [{ pidMax: 4096, threadsMax: 100_000 }, 1024],
    [{}, 4096],
  ];
  for (const [node, limit] of cases) assert.equal(environmentPidsLimit(0, node), limit, JSON.stringify(node));
});

test("an admin's number stands whatever the node", () => {
  assert.equal(environmentPidsLimit(500, { pidMax: 4_194_304 }), 500);
  assert.equal(pidsLimitNote(500, {}), "processes: at most 500 (set by an admin)");
  assert.equal(pidsLimitNote(0, { pidMax: 32_768 }), "processes: at most 4096 (an eighth of the node's 32768)");
});
