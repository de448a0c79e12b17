import assert from "node:assert/strict";
import { test } from "node:test";
import { attemptsWithin, lockMs, loginThrottle, retryAfterSeconds, throttleKey } from "./login-throttle.js";

test("back-off: the free failures cost nothing, then each failure doubles the wait up to the cap", () => {
  const policy = { free: 3, firstLockMs: 1000, maxLockMs: 10_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 100].map((n) => lockMs(policy, n)),
    [0, 0, 0, 1000, 2000, 4000, 8000, 10_000, 10_000],
  );
  assert.equal(lockMs(loginThrottle.account, 10_000), loginThrottle.account.maxLockMs, "no overflow");
});

test("keys: an account's key ignores case and spaces; Retry-After rounds up to the latest lock", () => {
  assert.equal(throttleKey.account(" Ada@Example.com"), "account:ada@example.com");
  const now = Date.parse("2026-01-01T00:00:00.000Z");
  assert.equal(retryAfterSeconds([undefined, "2026-01-01T00:00:01.200Z", "2026-01-01T00:00:00.500Z"], now), 2);
  assert.equal(retryAfterSeconds(["2025-12-31T23:59:59.000Z"], now), 0);
  assert.equal(retryAfterSeconds([], now), 0);
});

test("the figures: attempts one account and one address allow in their first minute and hour", () => {
  // 5 free, then waits of 1, 2, 4, 8, 16, 32 s fit in a minute.
  assert.equal(attemptsWithin(loginThrottle.account, 60_000), 11);
  assert.equal(attemptsWithin(loginThrottle.address, 60_000), 36);
  // Past the 15-minute cap, four an hour.
  assert.ok(attemptsWithin(loginThrottle.account, 3_600_000) <= 20);
});
