/** A build of an environment and the lines of its log. */

export interface Build {
  id: string;
  environmentId: string;
  startedAt: string;
  finishedAt?: string;
  outcome?: "running" | "failed" | "stopped" | "deleted";
}

export interface BuildLogLine {
  buildId: string;
  /** 1, 2, 3... within a build; clients resume a stream after the last seq they saw. */
  seq: number;
  at: string;
  text: string;
}
