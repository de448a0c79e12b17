/**
 * One figure a benchmark measured, with the baseline it is compared to,
 * measured in the same run on the same machine.
 */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** What the figure is compared to, with the baseline's own value ("docker run -d: 0.12 s"). */
  baseline: string;
  /** value / baseline value. */
  ratio: number;
  /** The goal, as written in the issue ("<= 1.0 s median"). */
  target?: string;
  /** Whether the target was met; absent when there is no target. */
  pass?: boolean;
}

/** What every bench/<name>/index.ts exports. */
export interface BenchModule {
  run(context: BenchContext): Promise<BenchResult[]>;
}

export interface BenchContext {
  /** Where a benchmark may keep its logs and files for this run. */
  artifacts: string;
  /** Progress lines for the person waiting. */
  log(line: string): void;
}
