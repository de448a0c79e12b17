/**
 * Accounts: password hashing, session and API tokens, and who a request is.
 * Passwords are hashed with scrypt (memory-hard); a hash string carries its own
 * parameters and salt, so they can be raised later without breaking old hashes.
 * Token secrets are shown once; only their SHA-256 is stored.
 */

import { createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { CvmError } from "../core/errors.js";
import type { NewUser, Store } from "../core/store.js";
import type { Token, TokenKind, User } from "../core/user.js";

const scryptParams = { N: 16384, r: 8, p: 1, keyLength: 64 } as const;
const sessionDays = 7;
const dayMs = 24 * 60 * 60 * 1000;
/** A token's lastUsedAt is refreshed at most this often, so reads stay reads. */
const touchEveryMs = 60_000;

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

export interface IssuedToken {
  token: Token;
  secret: string;
}

const unauthorized = (message: string) => new CvmError("UNAUTHORIZED", message);

export class Accounts {
  constructor(private readonly store: Store) {}

  async issue(userId: string, kind: TokenKind, name: string, ttlDays = sessionDays): Promise<IssuedToken> {
    const secret = newSecret();
    const token = await this.store.tokens.create({
      userId,
      kind,
      name,
      secretHash: secretHash(secret),
      expiresAt: new Date(Date.now() + ttlDays * dayMs).toISOString(),
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

  /** Checks an email and password; the same answer for an unknown email, a wrong password and a deactivated user. */
  async login(email: string, password: string): Promise<User> {
    const found = await this.store.users.getByEmail(email.toLowerCase());
    const ok = await verifyPassword(password, found?.passwordHash ?? (await decoyHash));
    if (!found || !ok || !found.active) throw unauthorized("Wrong email or password, or the account is deactivated");
    const { passwordHash: _hash, ...user } = found;
    return user;
  }

  /** Who holds this secret; 401 when it is unknown, revoked, expired or its user deactivated. */
  async authenticate(secret: string | undefined): Promise<Session> {
    if (!secret) throw unauthorized("Sign in first: no session cookie or Bearer token");
    const token = await this.store.tokens.findBySecretHash(secretHash(secret));
    if (!token) throw unauthorized("Unknown token: sign in again");
    if (token.revokedAt) throw unauthorized("This token was revoked: sign in again");
    const now = Date.now();
    if (Date.parse(token.expiresAt) <= now) throw unauthorized("This token expired: sign in again");
    const user = await this.store.users.get(token.userId);
    if (!user?.active) throw unauthorized("This account is deactivated");
    if (!token.lastUsedAt || now - Date.parse(token.lastUsedAt) > touchEveryMs) {
      const at = new Date(now).toISOString();
      await this.store.tokens.touch(token.id, at);
      token.lastUsedAt = at;
    }
    return { user, token };
  }
}
