/**
 * What counts as someone using an environment, for idle stop: open
 * terminals, SSH connections and forwarded connections (each held while
 * open), and single requests through a port (each a moment of use). Kept in
 * this process and written to the store by the idle stopper, so that with
 * several replicas an environment is idle only when none of them saw use.
 */

export class Activity {
  private readonly open = new Map<string, number>();
  private readonly touched = new Map<string, number>();

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
    this.touched.set(environmentId, Math.max(at, this.touched.get(environmentId) ?? 0));
  }

  /** Connections open now. */
  openCount(environmentId: string): number {
    return this.open.get(environmentId) ?? 0;
  }

  /**
   * The use seen since the last call: each environment touched, with when,
   * and each with a connection open, as used now.
   */
  drain(now = Date.now()): Map<string, number> {
    const seen = new Map(this.touched);
    this.touched.clear();
    for (const environmentId of this.open.keys()) seen.set(environmentId, now);
    return seen;
  }
}
