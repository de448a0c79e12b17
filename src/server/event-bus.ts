/**
 * In-process notifications: environment changes (for GET /events) and build
 * log activity (to wake log followers). Readers always re-read the store, so a
 * missed or duplicated notification costs a little latency, never a line.
 */

import { EventEmitter } from "node:events";
import type { Build } from "../core/build.js";
import type { Environment } from "../core/environment.js";

export type BusEvent =
  | { type: "environment"; environment: Environment }
  | { type: "deleted"; id: string; ownerId: string };

export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every open log stream and event stream listens; there is no leak to warn about.
    this.emitter.setMaxListeners(0);
  }

  publish(event: BusEvent): void {
    this.emitter.emit("environment", event);
  }

  subscribe(listener: (event: BusEvent) => void): () => void {
    this.emitter.on("environment", listener);
    return () => this.emitter.off("environment", listener);
  }

  /** A build wrote a line or ended. */
  buildActivity(buildId: string, outcome?: Build["outcome"]): void {
    this.emitter.emit(`build:${buildId}`, outcome);
  }

  onBuildActivity(buildId: string, listener: () => void): () => void {
    this.emitter.on(`build:${buildId}`, listener);
    return () => this.emitter.off(`build:${buildId}`, listener);
  }
}
