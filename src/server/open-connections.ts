/**
 * Every long-lived connection (a terminal, GET /events, a followed build log,
 * and SSH or a forwarded port) is held here with the session that opened it,
 * so that access ending ends it. One re-check reads every held token and its
 * user from the store at once and ends each connection whose token was
 * revoked or expired, whose user was deactivated, or whose user's role no
 * longer allows it. It runs at once when access changes through this server
 * (logout, revocation, deactivation, a role change) and every second while
 * anything is held, which is how a change made through another replica
 * reaches this one's connections within 2 s.
 */

import type { Logger } from "pino";
import type { Store } from "../core/store.js";
import { accessEnded, type Token, type User } from "../core/user.js";

export interface HeldSession {
  user: User;
  token: Token;
}

export interface HeldConnection {
  /** What it is, for the log: terminal, events, logs, ssh, port. */
  kind: string;
  /** Whether the user, as now stored, may keep it (a changed role may take away what it shows). */
  allows(user: User): boolean;
  /** Ends it, telling the client why; called at most once. */
  end(reason: string): void;
}

interface Held {
  session: HeldSession;
  connection: HeldConnection;
}

/** How often held connections are re-checked against the store (changes through other replicas). */
const defaultPollMs = 1_000;

export class OpenConnections {
  private readonly held = new Set<Held>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private queued?: Promise<void>;

  constructor(
    private readonly store: Store,
    private readonly options: { pollMs?: number; logger?: Logger } = {},
  ) {}

  /** Holds a connection; call the answer when it ends by itself. */
  hold(session: HeldSession, connection: HeldConnection): () => void {
    const entry: Held = { session, connection };
    this.held.add(entry);
    this.timer ??= setInterval(() => void this.recheck(), this.options.pollMs ?? defaultPollMs).unref();
    return () => this.release(entry);
  }

  /** How many connections are held (for /metrics and tests). */
  get size(): number {
    return this.held.size;
  }

  /**
   * Re-checks every held connection against the store now; resolves once the
   * ones whose access ended are ended. Calls made while a check runs share
   * the next one, which starts after it and so sees their change.
   */
  recheck(): Promise<void> {
    if (this.running) {
      this.queued ??= this.running.then(() => {
        this.queued = undefined;
        return this.recheck();
      });
      return this.queued;
    }
    this.running = this.check()
      .catch((error) => this.options.logger?.warn({ err: error }, "re-checking open connections"))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /** Stops re-checking; the server ends the connections themselves as it stops. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private release(entry: Held): void {
    this.held.delete(entry);
    if (this.held.size === 0) this.close();
  }

  private async check(): Promise<void> {
    if (this.held.size === 0) return;
    const ids = [...new Set([...this.held].map((entry) => entry.session.token.id))];
    const current = new Map((await this.store.tokens.sessions(ids)).map((found) => [found.token.id, found]));
    const now = Date.now();
    for (const entry of [...this.held]) {
      const found = current.get(entry.session.token.id);
      let reason = found ? accessEnded(found.token, found.user, now) : "This token no longer exists: sign in again";
      if (!reason && found && !entry.connection.allows(found.user)) {
        reason = `Your role is now ${found.user.role}, which does not allow this connection`;
      }
      if (!reason) continue;
      this.release(entry);
      this.options.logger?.info(
        { kind: entry.connection.kind, userId: entry.session.user.id, tokenId: entry.session.token.id, reason },
        "access ended: closing the connection",
      );
      try {
        entry.connection.end(reason);
      } catch (error) {
        this.options.logger?.warn({ err: error, kind: entry.connection.kind }, "ending a connection");
      }
    }
  }
}
