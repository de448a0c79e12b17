import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { KeyedMutex } from "./keyed-mutex.js";

test("work on one key runs one at a time, in arrival order; other keys do not wait", async () => {
  const mutex = new KeyedMutex();
  const events: string[] = [];
  const job = (key: string, name: string, ms: number) =>
    mutex.run(key, async () => {
      events.push(`${name} start`);
      await sleep(ms);
      events.push(`${name} end`);
      return name;
    });
  const results = await Promise.all([job("a", "a1", 30), job("a", "a2", 1), job("b", "b1", 5)]);
  assert.deepEqual(results, ["a1", "a2", "b1"]);
  assert.ok(events.indexOf("a1 end") < events.indexOf("a2 start"), events.join(", "));
  assert.ok(events.indexOf("b1 end") < events.indexOf("a1 end"), "b did not wait for a");
});

test("a failing holder releases the key", async () => {
  const mutex = new KeyedMutex();
  await assert.rejects(
    mutex.run("a", async () => {
      throw new Error("boom");
    }),
    /boom/,
  );
  assert.equal(await mutex.run("a", async () => "next"), "next");
});
