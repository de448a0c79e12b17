import assert from "node:assert/strict";
import { test } from "node:test";
import type { StateChange } from "../../../../src/core/environment.js";
import { buildSteps, timeInStates } from "./build-steps.js";

const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds)).toISOString();
const change = (state: StateChange["state"], seconds: number, reason?: string): StateChange => ({
  state,
  at: at(seconds),
  ...(reason ? { reason } : {}),
});

test("a build under way: done steps with their time, the current one so far, the rest pending", () => {
  const timeline = [change("queued", 0), change("pulling", 1), change("creating", 4)];
  assert.deepEqual(buildSteps({ timeline, cvm: true }, Date.parse(at(6))), [
    { state: "queued", label: "Queued", status: "done", ms: 1000 },
    { state: "pulling", label: "Pull the image", status: "done", ms: 3000 },
    { state: "creating", label: "Create the container", status: "current", ms: 2000 },
    { state: "starting", label: "Boot: systemd as PID 1, then Docker inside", status: "pending" },
  ]);
});

test("a start after a stop has one step; an earlier build's steps are not this one's", () => {
  const timeline = [
    change("queued", 0),
    change("pulling", 1),
    change("creating", 2),
    change("starting", 3),
    change("running", 4),
    change("stopping", 10),
    change("stopped", 11),
    change("starting", 20),
    change("failed", 22, "exited with code 1"),
  ];
  assert.deepEqual(buildSteps({ timeline, cvm: false }, Date.parse(at(30))), [
    { state: "starting", label: "Start", status: "failed", ms: 2000 },
  ]);
});

test("timeInStates: each state until the next; a resting last state has none, a passing one runs on", () => {
  assert.deepEqual(timeInStates([change("queued", 0), change("pulling", 2), change("running", 5)], Date.parse(at(9))), [
    2000,
    3000,
    undefined,
  ]);
  assert.deepEqual(timeInStates([change("queued", 0), change("pulling", 2)], Date.parse(at(9))), [2000, 7000]);
});
