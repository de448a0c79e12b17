/**
 * The first-run setup code: until the first account exists, creating it needs
 * a one-time code that the server prints in its log, so that nobody who can
 * merely reach the server (or a page in the admin's browser) claims a fresh
 * install. The code lives in the store, so every replica prints and accepts
 * the same one, and is removed once the first admin exists. 12 characters of
 * a 32-letter alphabet: 60 bits, beyond guessing.
 */

import { randomInt, timingSafeEqual } from "node:crypto";
import type { Logger } from "pino";
import type { Store } from "../core/store.js";

const storeKey = "setup-code";
/** No 0/O or 1/I/L, so a code read off a log and typed is typed right. */
const alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";

export function newSetupCode(): string {
  const letters = Array.from({ length: 12 }, () => alphabet[randomInt(alphabet.length)]).join("");
  return letters.match(/.{4}/g)?.join("-") ?? letters;
}

/** Case, spaces and dashes do not matter when it is typed. */
const normalized = (code: string) => code.toUpperCase().replace(/[\s-]/g, "");

export class SetupCode {
  private known?: string;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    /** A code chosen by the operator (CVM_SETUP_CODE), used unless the store holds one already. */
    private readonly preset?: string,
  ) {}

  /** At start: on a store without accounts, makes the code (once, for every replica) and prints it. */
  async announce(): Promise<void> {
    if ((await this.store.users.count()) > 0) {
      await this.store.settings.removeValue(storeKey);
      return;
    }
    this.known = await this.store.settings.putValueIfAbsent(storeKey, this.preset || newSetupCode());
    this.logger.warn(
      { setupCode: this.known },
      `first-run setup code: ${this.known} (the first account, the site admin, is created with it: the dashboard asks for it, and so does cvm login)`,
    );
  }

  /** The code as this server last read it, while no account exists (tests and embedding read it here). */
  get current(): string | undefined {
    return this.known;
  }

  async matches(code: string): Promise<boolean> {
    const stored = await this.store.settings.getValue(storeKey);
    if (!stored) return false;
    const a = Buffer.from(normalized(stored));
    const b = Buffer.from(normalized(code));
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** The first admin exists: the code is spent. */
  async spent(): Promise<void> {
    this.known = undefined;
    await this.store.settings.removeValue(storeKey);
  }
}
