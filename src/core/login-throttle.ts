/**
 * How sign-in failures slow further attempts: each account and each client
 * address gets a few free failures, then every failure doubles the wait
 * (exponential back-off) up to a cap. The rule lives here, without I/O; the
 * counts live in the store, so replicas share them.
 */

export interface BackoffPolicy {
  /** Failures allowed before the first wait. */
  free: number;
  /** The first wait; each further failure doubles it. */
  firstLockMs: number;
  /** The longest wait. */
  maxLockMs: number;
}

export const loginThrottle = {
  /** One account, from anywhere: guessing one password. */
  account: { free: 5, firstLockMs: 1_000, maxLockMs: 15 * 60_000 },
  /** One client address, across accounts: spraying one password over many accounts. More lenient, for shared NATs. */
  address: { free: 30, firstLockMs: 1_000, maxLockMs: 15 * 60_000 },
  /** Failures older than this, with none since, are forgotten. */
  forgetAfterMs: 60 * 60_000,
} as const satisfies { account: BackoffPolicy; address: BackoffPolicy; forgetAfterMs: number };

/** The wait after the n-th failure in a row: 0 for the free ones, then 1 s, 2 s, 4 s... up to the cap. */
export function lockMs(policy: BackoffPolicy, failures: number): number {
  if (failures <= policy.free) return 0;
  const doublings = Math.min(failures - policy.free - 1, 40);
  return Math.min(policy.maxLockMs, policy.firstLockMs * 2 ** doublings);
}

export const throttleKey = {
  account: (email: string) => `account:${email.trim().toLowerCase()}`,
  address: (address: string) => `address:${address}`,
};

/** Seconds until the latest of these locks ends, or 0 when none holds at `now`. */
export function retryAfterSeconds(lockedUntil: readonly (string | undefined)[], now: number): number {
  const until = Math.max(0, ...lockedUntil.map((at) => (at ? Date.parse(at) : 0)));
  return until > now ? Math.ceil((until - now) / 1000) : 0;
}

/**
 * How many attempts one key allows in its first `windowMs` from a standing
 * start, when every attempt fails and each waits out its lock: the figure
 * docs/security.md reports.
 */
export function attemptsWithin(policy: BackoffPolicy, windowMs: number): number {
  let at = 0;
  let attempts = 0;
  while (at <= windowMs) {
    attempts++;
    at += lockMs(policy, attempts);
  }
  return attempts;
}
