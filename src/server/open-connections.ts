/**
 * Every long-lived connection (a terminal, GET /events, a followed build log,
 * and SSH or a forwarded port) is held here with the session that opened it,
 * so that access ending ends it. One re-check reads every held token and its
 * user from the store at once and ends each connection whose token was
 * revoked or expired, whose user was deactivated, or whose user's role no
 * longer allows it. A connection to an environment's port is held with what
 * let it in as well (the environment itself, or the port's share, which is
 * how a public port's anonymous viewer, who has no session, is held): the
 * port judge (PortsService) asks the port's rule again with the share, the
 * site's settings and the environment as stored now, so a share made
 * private, public sharing turned off, or the environment stopped or deleted
 * ends what it no longer allows. The re-check runs at once when access
 * changes through this server (logout, revocation, deactivation, a role
 * change, a share, the settings, an environment stopping) and every second
 * while anything is held, which is how a change made through another
 * replica reaches this one's connections within 2 s.
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
  /** A connection to an environment's port: re-judged by the port judge too. */
  port?: HeldPort;
}

/** A port connection and what let it in. */
export interface HeldPort {
  environmentId: string;
  port: number;
  /**
   * "environment": its viewer may use the environment itself (the owner, or
   * `cvm port-forward` by a role that sees it), which no share changes;
   * "share": the port's share let them in (anonymous viewers too).
   */
  admitted: "environment" | "share";
}

/** Asks each held port connection's rule again, with what is stored now (PortsService). */
export interface PortJudge {
  /**
   * Why each may no longer stay open, or undefined where it may; `viewer` is
   * the user as stored now, undefined for an anonymous viewer.
   */
  rejudge(held: readonly { port: HeldPort; viewer?: User }[]): Promise<(string | undefined)[]>;
}

interface Held {
  /** None for a public port's anonymous viewer. */
  session?: HeldSession;
  connection: HeldConnection;
}

/** How often held connections are re-checked against the store (changes through other replicas). */
const defaultPollMs = 1_000;

export class OpenConnections {
  private readonly held = new Set<Held>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private queued?: Promise<void>;
  private ports?: PortJudge;

  constructor(
    private readonly store: Store,
    private readonly options: { pollMs?: number; logger?: Logger } = {},
  ) {}

  /** Who re-judges port connections (made after this registry, with the workspace). */
  judgePortsWith(judge: PortJudge): void {
    this.ports = judge;
  }

  /**
   * Holds a connection; call the answer when it ends by itself. Only a port
   * connection may be held without a session (a public port's anonymous viewer).
   */
  hold(session: HeldSession | undefined, connection: HeldConnection): () => void {
    if (!session && !connection.port) throw new Error(`a ${connection.kind} connection is held with its session`);
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
    const entries = [...this.held];
    const ids = [...new Set(entries.flatMap((entry) => (entry.session ? [entry.session.token.id] : [])))];
    const current = new Map(
      (ids.length > 0 ? await this.store.tokens.sessions(ids) : []).map((found) => [found.token.id, found]),
    );
    const now = Date.now();
    const ended = new Map<Held, string>();
    const ports: { entry: Held; port: HeldPort; viewer?: User }[] = [];
    for (const entry of entries) {
      let viewer: User | undefined;
      if (entry.session) {
        const found = current.get(entry.session.token.id);
        let reason = found ? accessEnded(found.token, found.user, now) : "This token no longer exists: sign in again";
        if (!reason && found && !entry.connection.allows(found.user)) {
          reason = `Your role is now ${found.user.role}, which does not allow this connection`;
        }
        if (reason) {
          ended.set(entry, reason);
          continue;
        }
        viewer = found?.user;
      }
      if (entry.connection.port) ports.push({ entry, port: entry.connection.port, viewer });
    }
    if (ports.length > 0 && this.ports) {
      const verdicts = await this.ports.rejudge(ports);
      for (const [i, reason] of verdicts.entries()) if (reason) ended.set(ports[i].entry, reason);
    }
    for (const [entry, reason] of ended) {
      if (!this.held.has(entry)) continue;
      this.release(entry);
      const { connection, session } = entry;
      this.options.logger?.info(
        { kind: connection.kind, userId: session?.user.id, tokenId: session?.token.id, port: connection.port, reason },
        "access ended: closing the connection",
      );
      try {
        connection.end(reason);
      } catch (error) {
        this.options.logger?.warn({ err: error, kind: connection.kind }, "ending a connection");
      }
    }
  }
}
