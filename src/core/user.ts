import type { Role } from "./roles.js";

export interface User {
  id: string;
  email: string;
  name: string;
  role: Role;
  active: boolean;
  createdAt: string;
}

export type TokenKind = "session" | "api";

/** A session or API token as stored: only the hash of its secret is kept. */
export interface Token {
  id: string;
  userId: string;
  kind: TokenKind;
  name: string;
  createdAt: string;
  expiresAt: string;
  lastUsedAt?: string;
  revokedAt?: string;
}

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
