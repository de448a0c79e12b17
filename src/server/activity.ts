/**
 * What counts as someone using an environment, for idle stop: open
 * terminals, SSH connections and forwarded connections (each held while
 * open), and single requests through a port (each a moment of use). Kept in
 * this process; with several replicas each knows its own connections, and
 * an environment is idle only when the replica that stops it saw nothing
 * (see IdleStopper for how replicas agree).
 */

export class Activity {
  private readonly open = new Map<string, number>();
  private readonly last = new Map<string, number>();

  /** Marks the environment in use until the returned function is called. */
  hold(environmentId: string): () => void {
    this.open.set(environmentId, (this.open.get(environmentId) ?? 0) + 1);
    this.touch(environmentId);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(environmentId) ?? 1) - 1;
      if (left > 0) this.open.set(environmentId, left);
      else this.open.delete(environmentId);
      this.touch(environmentId);
    };
  }

  /** A moment of use. */
  touch(environmentId: string, at = Date.now()): void {
    this.last.set(environmentId, Math.max(at, this.last.get(environmentId) ?? 0));
  }

  /** Connections open now. */
  openCount(environmentId: string): number {
    return this.open.get(environmentId) ?? 0;
  }

  /** When it was last used here (now, while a connection is open); undefined if never seen. */
  lastUsed(environmentId: string, now = Date.now()): number | undefined {
    if (this.openCount(environmentId) > 0) return now;
    return this.last.get(environmentId);
  }

  forget(environmentId: string): void {
    this.open.delete(environmentId);
    this.last.delete(environmentId);
  }
}
