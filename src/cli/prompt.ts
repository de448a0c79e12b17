/** Asking a person at a terminal; scripts pass flags instead. */

import { createInterface } from "node:readline/promises";
import { CvmError } from "../core/errors.js";

export function interactive(): boolean {
  return Boolean(process.stdin.isTTY && process.stdout.isTTY);
}

export async function ask(question: string, options: { secret?: boolean } = {}): Promise<string> {
  if (!interactive()) {
    throw new CvmError(
      "BAD_REQUEST",
      `${question.replace(/:\s*$/, "")} is required (no terminal to ask on: pass it as a flag)`,
    );
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  if (options.secret) {
    // Echo nothing while the secret is typed.
    const output = rl as unknown as { _writeToOutput: (text: string) => void };
    const write = output._writeToOutput.bind(rl);
    output._writeToOutput = (text: string) => write(text.startsWith(question) ? text : "");
  }
  try {
    const answer = await rl.question(question);
    if (options.secret) process.stdout.write("\n");
    return answer.trim();
  } finally {
    rl.close();
  }
}

export async function confirm(question: string): Promise<boolean> {
  const answer = await ask(`${question} [y/N] `);
  return /^y(es)?$/i.test(answer);
}
