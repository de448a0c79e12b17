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

/** All of standard input, without its final newline: a secret piped in (`--password-stdin`). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

/**
 * A secret never taken from the command line, where `ps` shows it to every
 * user of the machine: from standard input when asked to, else from an
 * environment variable, else asked for without echo at a terminal.
 */
export async function secret(
  question: string,
  options: { stdin?: boolean; env: string; flag: string },
): Promise<string> {
  if (options.stdin) return readStdin();
  const fromEnv = process.env[options.env];
  if (fromEnv !== undefined) return fromEnv;
  if (!interactive()) {
    throw new CvmError(
      "BAD_REQUEST",
      `${question.replace(/:\s*$/, "")} is required: pipe it to ${options.flag} or set ${options.env} (no terminal to ask on)`,
    );
  }
  return ask(question, { secret: true });
}

/** Registry credentials from --registry-user and the password (--registry-password-stdin, CVM_REGISTRY_PASSWORD, or a prompt). */
export async function registryCredentials(options: {
  registryUser?: string;
  registryPasswordStdin?: boolean;
}): Promise<{ username: string; password: string } | undefined> {
  if (options.registryUser === undefined) return undefined;
  return {
    username: options.registryUser,
    password: await secret("Registry password: ", {
      stdin: options.registryPasswordStdin,
      env: "CVM_REGISTRY_PASSWORD",
      flag: "--registry-password-stdin",
    }),
  };
}
