/**
 * Short commands inside an environment whose output is all that matters
 * (reading /etc/passwd, the port table on a Pod the node cannot open),
 * through any provider's own exec.
 */

import type { Environment } from "../core/environment.js";
import type { ExecOptions, Provider } from "../core/provider.js";

/** The stdout of a command run inside with no input; killed after `timeoutMs`. */
export async function outputOf(
  exec: Provider["exec"],
  environment: Environment,
  options: Omit<ExecOptions, "tty">,
  timeoutMs = 15_000,
): Promise<string> {
  const session = await exec(environment, { ...options, tty: false });
  const chunks: Uint8Array[] = [];
  session.onOutput((stream, data) => {
    if (stream === "stdout") chunks.push(data);
  });
  session.end();
  const timer = setTimeout(() => session.kill(), timeoutMs);
  try {
    await session.exited;
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The texts of `paths` inside the environment, concatenated; absent files read as nothing. */
export function readInside(exec: Provider["exec"], environment: Environment, paths: string[]): Promise<string> {
  return outputOf(exec, environment, {
    command: ["/bin/sh", "-c", 'for f in "$@"; do cat "$f" 2>/dev/null; echo; done', "sh", ...paths],
  });
}
