/**
 * The Pod agent's side of the report channel: build-log lines, states and
 * observations posted to the server in order, lines written while one post is
 * in flight batched into the next, and retried while the server is
 * unreachable. A report is never worth the environment: a refusal or a
 * server gone for good is warned about, not thrown.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type { SupervisorReport } from "../core/provider.js";

export class SupervisorReporter {
  private pending: SupervisorReport[] = [];
  private flushing: Promise<void> | undefined;

  /** `url` is the environment's report URL (pod-contract.ts supervisorReportUrl); without it or a token, nothing is sent. */
  constructor(
    private readonly url: string | undefined,
    private readonly token: string | undefined,
    private readonly warn: (message: string) => void,
  ) {}

  line(text: string): void {
    this.send({ lines: [text] });
  }

  send(report: SupervisorReport): void {
    if (!this.url || !this.token) return;
    this.pending.push(report);
    this.flushing ??= this.flush().finally(() => {
      this.flushing = undefined;
    });
  }

  /** Resolves once everything sent so far has been delivered (or given up on). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      // Consecutive line-only reports travel together.
      const merged: SupervisorReport[] = [];
      for (const report of batch) {
        const last = merged.at(-1);
        if (last && !last.state && !last.observation && Object.keys(report).every((k) => k === "lines")) {
          last.lines = [...(last.lines ?? []), ...(report.lines ?? [])];
        } else merged.push({ ...report });
      }
      for (const report of merged) await this.deliver(report);
    }
  }

  private async deliver(report: SupervisorReport): Promise<void> {
    for (let attempt = 0; attempt < 8; attempt++) {
      try {
        const response = await fetch(this.url as string, {
          method: "POST",
          headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
          body: JSON.stringify(report),
        });
        if (response.ok) return;
        // A refusal will not change by retrying.
        if (response.status < 500) {
          this.warn(`the server refused a report: ${response.status} ${await response.text()}`);
          return;
        }
      } catch (error) {
        if (attempt === 7) this.warn(`could not reach the server: ${(error as Error).message}`);
      }
      await sleep(Math.min(250 * 2 ** attempt, 5000));
    }
  }
}
