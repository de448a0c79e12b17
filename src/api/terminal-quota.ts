/**
 * The terminals quota (settings `quotas.terminals`): how many terminals each
 * member has open on this server. A slot is taken before the exec starts and
 * given back when the WebSocket closes or the opening fails, so a burst of
 * upgrades cannot slip past the count. Counted per server process: with
 * several replicas a member may hold the quota on each.
 */

import { heldToQuotas, quotaReached } from "../core/quotas.js";
import type { User } from "../core/user.js";

export class TerminalCounts {
  private readonly open = new Map<string, number>();

  /** Takes a slot for the user, or throws the quota's 409; returns the function that gives it back (once). */
  take(user: Pick<User, "id" | "role">, limit: number): () => void {
    const held = this.open.get(user.id) ?? 0;
    if (heldToQuotas(user.role) && limit > 0 && held >= limit) throw quotaReached("terminals", limit, held, 1);
    this.open.set(user.id, held + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.open.get(user.id) ?? 1) - 1;
      if (left > 0) this.open.set(user.id, left);
      else this.open.delete(user.id);
    };
  }
}
