/** Users and their tokens: the rules for emails and passwords. */

// The shapes themselves are zod schemas in ./schemas.ts; their types are re-exported here.
export type { Token, User } from "./schemas.js";

export const tokenKinds = ["session", "api"] as const;
export type TokenKind = (typeof tokenKinds)[number];

const emailPattern = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function emailProblem(email: unknown): string | undefined {
  if (typeof email !== "string" || email.length === 0) return "is required";
  if (email.length > 254) return "must be at most 254 characters";
  if (!emailPattern.test(email)) return "must be an email address such as ada@example.com";
  return undefined;
}

export function passwordProblem(password: unknown): string | undefined {
  if (typeof password !== "string") return "is required";
  if (password.length < 8) return "must be at least 8 characters";
  if (password.length > 256) return "must be at most 256 characters";
  return undefined;
}
