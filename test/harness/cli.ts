/**
 * The cvm command as users run it: bin/cvm in a child process, its output
 * and exit code captured. Tests of the CLI run this.
 */

import { execFile } from "node:child_process";
import { join } from "node:path";

export const cvmBin = join(import.meta.dirname, "..", "..", "bin", "cvm");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/cvm; a non-zero exit is a result, not an error. */
export function runCvm(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      cvmBin,
      args,
      { env: options.env ?? process.env, cwd: options.cwd, timeout: options.timeout ?? 240_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
