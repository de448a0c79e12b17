import assert from "node:assert/strict";
import { test } from "node:test";
import { CvmError } from "../core/errors.js";
import { TerminalCounts } from "./terminal-quota.js";

const member = { id: "usr_m", role: "member" as const };

test("a member's terminals stop at the quota, and a closed one frees its slot once", () => {
  const counts = new TerminalCounts();
  const releases = [counts.take(member, 2), counts.take(member, 2)];
  assert.throws(
    () => counts.take(member, 2),
    (error: unknown) =>
      error instanceof CvmError &&
      error.status === 409 &&
      error.message === "Quota reached: a member may have at most 2 open terminals (quota terminals)",
  );
  releases[0]();
  releases[0]();
  const third = counts.take(member, 2);
  assert.throws(() => counts.take(member, 2), CvmError);
  third();
  releases[1]();
  assert.doesNotThrow(() => counts.take({ id: "usr_other", role: "member" }, 1));
});

test("admins, and a quota of 0, are not counted against", () => {
  const counts = new TerminalCounts();
  for (let i = 0; i < 5; i++) counts.take({ id: "usr_a", role: "site-admin" }, 1);
  for (let i = 0; i < 5; i++) counts.take(member, 0);
});
