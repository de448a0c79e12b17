/**
 * Sign-in throttling, per account and per client address, with the counts in
 * the store so every replica sees them (src/core/login-throttle.ts has the
 * rule). A locked key answers 429 with Retry-After before any password is
 * checked, the right one included. Failures and the start of each lock are
 * audited. Known and unknown emails take the same path, reads and writes
 * alike, so the answer's time tells nothing about which accounts exist.
 */

import { CvmError } from "../core/errors.js";
import { lockMs, loginThrottle, retryAfterSeconds, throttleKey } from "../core/login-throttle.js";
import type { Store } from "../core/store.js";
import type { AuditLog } from "./audit-log.js";

/** `account:<email>` is audited as `account/<email>`, like the log's other targets (`user/<id>`). */
const auditTarget = (key: string) => key.replace(":", "/");

export class LoginThrottle {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
  ) {}

  /** A 429 when the account or the address is locked now. */
  async check(email: string, address: string): Promise<void> {
    const keys = [throttleKey.account(email), throttleKey.address(address)];
    const states = await this.store.loginThrottle.get(keys);
    const wait = retryAfterSeconds(
      keys.map((key) => states.get(key)?.lockedUntil),
      this.now(),
    );
    if (wait > 0) {
      throw new CvmError("TOO_MANY_REQUESTS", `Too many failed sign-ins: try again in ${wait} s`, {
        retryAfterSeconds: wait,
      });
    }
  }

  /** Counts a failure against both keys, and audits it (and a lock it starts). */
  async failed(email: string, address: string, userId: string | undefined): Promise<void> {
    const at = new Date(this.now()).toISOString();
    const forgetBefore = new Date(this.now() - loginThrottle.forgetAfterMs).toISOString();
    const account = throttleKey.account(email);
    const byAccount = await this.store.loginThrottle.fail(account, at, forgetBefore, (n) =>
      lockMs(loginThrottle.account, n),
    );
    const byAddress = await this.store.loginThrottle.fail(throttleKey.address(address), at, forgetBefore, (n) =>
      lockMs(loginThrottle.address, n),
    );
    // The attempt is the actor: who typed it is not known. The email is kept as typed (bounded by the login schema).
    const actor = { id: userId ?? "anonymous", email: email.trim().toLowerCase(), role: "member" as const };
    const target = userId ? `user/${userId}` : auditTarget(account);
    await this.audit.record(actor, "auth.login-failed", target, null, {
      address,
      failures: byAccount.failures,
      addressFailures: byAddress.failures,
    });
    const locks: [string, number, number][] = [
      [account, byAccount.failures, loginThrottle.account.free + 1],
      [throttleKey.address(address), byAddress.failures, loginThrottle.address.free + 1],
    ];
    for (const [key, failures, firstLocked] of locks) {
      if (failures !== firstLocked) continue;
      await this.audit.record(actor, "auth.lockout", auditTarget(key), null, { address, failures });
    }
  }

  /** A sign-in succeeded: the account starts afresh (the address does not, or one good account would reset it). */
  async succeeded(email: string): Promise<void> {
    await this.store.loginThrottle.clear(throttleKey.account(email));
  }
}
