/**
 * Accounts: password hashing, session and API tokens, and who a request is.
 * Passwords are hashed with scrypt (memory-hard); a hash string carries its own
 * parameters and salt, so they can be raised later without breaking old hashes.
 * Token secrets are shown once; only their SHA-256 is stored. Every change of
 * access made here (revocation, logout, deactivation, a role change) re-checks
 * the connections held open (./open-connections.ts) before it answers.
 */

import { createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { CvmError } from "../core/errors.js";
import type { NewToken, NewUser, Store } from "../core/store.js";
import { accessEnded, type Token, type TokenKind, type User } from "../core/user.js";
import type { LoginThrottle } from "./login-throttle.js";
import type { OpenConnections } from "./open-connections.js";

const scryptParams = { N: 16384, r: 8, p: 1, keyLength: 64 } as const;
const sessionDays = 7;
const dayMs = 24 * 60 * 60 * 1000;
/** A token's lastUsedAt is refreshed at most this often, so reads stay reads. */
const touchEveryMs = 60_000;
/**
 * How long a checked token is trusted without asking the store again. Changes
 * made through this server (revoke, logout, deactivate, role change) take
 * effect at once; those made through another replica within this time.
 */
const sessionCacheMs = 2_000;
const sessionCacheLimit = 10_000;

function derive(password: string, salt: Buffer, N: number, r: number, p: number, keyLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLength, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

/** `scrypt$N$r$p$salt$hash`, salt and hash in base64url. */
export async function hashPassword(password: string): Promise<string> {
  const { N, r, p, keyLength } = scryptParams;
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, r, p, keyLength);
  return ["scrypt", N, r, p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64url");
  const key = await derive(password, Buffer.from(salt, "base64url"), Number(n), Number(r), Number(p), expected.length);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Compared against when an email is unknown, so a wrong email costs as long as a wrong password. */
const decoyHash = hashPassword(randomBytes(16).toString("hex"));

export function secretHash(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function newSecret(): string {
  return `cvm_${randomBytes(32).toString("base64url")}`;
}

export interface Session {
  user: User;
  token: Token;
}

/** Where the request that asks for a token came from; the token keeps it, so its owner can tell their sessions apart. */
export type TokenOrigin = Pick<NewToken, "userAgent" | "address">;

export interface IssuedToken {
  token: Token;
  secret: string;
}

const unauthorized = (message: string) => new CvmError("UNAUTHORIZED", message);

export interface AccountsOptions {
  /** Connections to re-check when access changes here. */
  connections?: OpenConnections;
  /** Sign-in throttling; none when absent (unit tests of the rest). */
  throttle?: LoginThrottle;
}

export class Accounts {
  private readonly checked = new Map<string, { session: Session; at: number }>();

  constructor(
    private readonly store: Store,
    private readonly options: AccountsOptions = {},
  ) {}

  /** Revokes a token; it is refused from the next request on, and what it holds open is closed. */
  async revoke(tokenId: string): Promise<void> {
    await this.store.tokens.revoke(tokenId, new Date().toISOString());
    this.forget((session) => session.token.id === tokenId);
    await this.options.connections?.recheck();
  }

  /**
   * A user's role or activation changed: their tokens are checked afresh, and
   * their open connections end if the change took away what they show.
   * Deactivation revokes every token, so reactivating brings none back.
   */
  async userChanged(user: User): Promise<void> {
    if (!user.active) await this.store.tokens.revokeForUser(user.id, new Date().toISOString());
    this.forget((session) => session.user.id === user.id);
    await this.options.connections?.recheck();
  }

  private forget(matches: (session: Session) => boolean): void {
    for (const [key, entry] of this.checked) if (matches(entry.session)) this.checked.delete(key);
  }

  async issue(
    userId: string,
    kind: TokenKind,
    name: string,
    ttlDays = sessionDays,
    origin: TokenOrigin = {},
  ): Promise<IssuedToken> {
    const secret = newSecret();
    const token = await this.store.tokens.create({
      userId,
      kind,
      name,
      secretHash: secretHash(secret),
      expiresAt: new Date(Date.now() + ttlDays * dayMs).toISOString(),
      ...origin,
    });
    return { token, secret };
  }

  async createUser(input: { email: string; password: string; name?: string; role: User["role"] }): Promise<NewUser> {
    return {
      email: input.email.toLowerCase(),
      name: input.name?.trim() || input.email.split("@")[0],
      role: input.role,
      passwordHash: await hashPassword(input.password),
    };
  }

  /**
   * Checks an email and password from a client address; the same answer, in
   * the same time, for an unknown email, a wrong password and a deactivated
   * user. A throttled account or address is a 429 before any of that.
   */
  async login(email: string, password: string, address: string): Promise<User> {
    const { throttle } = this.options;
    await throttle?.check(email, address);
    const found = await this.store.users.getByEmail(email.toLowerCase());
    const ok = await verifyPassword(password, found?.passwordHash ?? (await decoyHash));
    if (!found || !ok || !found.active) {
      await throttle?.failed(email, address, found?.id);
      throw unauthorized("Wrong email or password, or the account is deactivated");
    }
    await throttle?.succeeded(email);
    const { passwordHash: _hash, ...user } = found;
    return user;
  }

  /** Who holds this secret; 401 when it is unknown, revoked, expired or its user deactivated. */
  async authenticate(secret: string | undefined): Promise<Session> {
    if (!secret) throw unauthorized("Sign in first: no session cookie or Bearer token");
    const hash = secretHash(secret);
    const now = Date.now();
    const cached = this.checked.get(hash);
    if (cached && now - cached.at < sessionCacheMs && Date.parse(cached.session.token.expiresAt) > now) {
      return cached.session;
    }
    this.checked.delete(hash);
    const token = await this.store.tokens.findBySecretHash(hash);
    if (!token) throw unauthorized("Unknown token: sign in again");
    const user = token.revokedAt ? undefined : await this.store.users.get(token.userId);
    const ended = accessEnded(token, user, now);
    if (ended || !user) throw unauthorized(ended ?? "This account is deactivated");
    if (!token.lastUsedAt || now - Date.parse(token.lastUsedAt) > touchEveryMs) {
      const at = new Date(now).toISOString();
      await this.store.tokens.touch(token.id, at);
      token.lastUsedAt = at;
    }
    if (this.checked.size >= sessionCacheLimit) this.checked.clear();
    const session = { user, token };
    this.checked.set(hash, { session, at: now });
    return session;
  }
}
