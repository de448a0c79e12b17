/** Users and their tokens: the rules for emails and passwords. */

// The shapes themselves are zod schemas in ./schemas.ts; their types are re-exported here.
export type { Token, User } from "./schemas.js";

export const tokenKinds = ["session", "api"] as const;
export type TokenKind = (typeof tokenKinds)[number];

/** The rules as plain data too, so the API's schemas (and the OpenAPI document) state them. */
export const emailRule = { maxLength: 254, pattern: /^[^\s@]+@[^\s@]+\.[^\s@]+$/ } as const;
export const passwordRule = { minLength: 8, maxLength: 256 } as const;

export function emailProblem(email: unknown): string | undefined {
  if (typeof email !== "string" || email.length === 0) return "is required";
  if (email.length > emailRule.maxLength) return `must be at most ${emailRule.maxLength} characters`;
  if (!emailRule.pattern.test(email)) return "must be an email address such as ada@example.com";
  return undefined;
}

export function passwordProblem(password: unknown): string | undefined {
  if (typeof password !== "string") return "is required";
  if (password.length < passwordRule.minLength) return `must be at least ${passwordRule.minLength} characters`;
  if (password.length > passwordRule.maxLength) return `must be at most ${passwordRule.maxLength} characters`;
  return undefined;
}

/**
 * Why a token no longer grants access, or undefined while it does: the one
 * rule for a request's token and for a connection held open on one.
 */
export function accessEnded(
  token: { revokedAt?: string; expiresAt: string },
  user: { active: boolean } | undefined,
  now: number,
): string | undefined {
  if (token.revokedAt) return "This token was revoked: sign in again";
  if (Date.parse(token.expiresAt) <= now) return "This token expired: sign in again";
  if (!user?.active) return "This account is deactivated";
  return undefined;
}
