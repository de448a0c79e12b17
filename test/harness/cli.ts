/**
 * The cvm command as users run it: bin/cvm over the compiled dist/, rebuilt
 * first when the sources changed (`npm test` builds it once up front, so this
 * is a check of a hash there). Tests of the CLI run this, not the sources.
 */

import { execFile } from "node:child_process";
import { join } from "node:path";
import { ensureDist } from "../../scripts/build.js";

export const cvmBin = join(import.meta.dirname, "..", "..", "bin", "cvm");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Makes sure dist/ holds these sources; returns bin/cvm's path. */
export async function compiledCvm(): Promise<string> {
  await ensureDist();
  return cvmBin;
}

/** Runs bin/cvm; a non-zero exit is a result, not an error. */
export function runCvm(
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    timeout?: number;
    nodeOptions?: string[];
    /** What the command reads on stdin, which then ends; left open (as a terminal's) when not given. */
    stdin?: string;
  } = {},
): Promise<CliResult> {
  const [file, argv] = options.nodeOptions
    ? [process.execPath, [...options.nodeOptions, cvmBin, ...args]]
    : [cvmBin, args];
  return new Promise((resolve) => {
    const child = execFile(
      file,
      argv,
      { env: options.env ?? process.env, cwd: options.cwd, timeout: options.timeout ?? 240_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (options.stdin !== undefined) child.stdin?.end(options.stdin);
  });
}
