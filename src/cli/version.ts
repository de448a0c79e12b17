/**
 * `cvm version` and `cvm --version`: the CLI's version and the configured
 * server's (GET /api/v1/buildinfo), so a mismatch is seen before it confuses.
 */

import type { Command } from "commander";
import { cvmVersion } from "../core/version.js";
import { clientFor, configured } from "./config.js";
import { printJson } from "./output.js";

interface Versions {
  client: { version: string; node: string };
  server?: { url: string; version?: string; error?: string };
}

async function versions(): Promise<Versions> {
  const found: Versions = { client: { version: cvmVersion, node: process.versions.node } };
  const { url } = configured();
  if (!url) return found;
  try {
    found.server = { url, version: (await clientFor(url).buildInfo()).version };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    found.server = { url, error: cause ?? (error as Error).message };
  }
  return found;
}

/** Prints both versions; a server that does not answer is an error (exit 1) after the client's line. */
export async function printVersions(options: { json?: boolean } = {}): Promise<void> {
  const found = await versions();
  if (found.server?.error) process.exitCode = 1;
  if (options.json) return printJson(found);
  process.stdout.write(`Client: cvm ${found.client.version} (node ${found.client.node})\n`);
  const { server } = found;
  if (!server) process.stdout.write("Server: none configured (log in with: cvm login URL)\n");
  else if (server.version) process.stdout.write(`Server: cvm ${server.version} at ${server.url}\n`);
  else process.stderr.write(`cvm: the server at ${server.url} did not answer: ${server.error}\n`);
}

export function register(program: Command): void {
  program
    .command("version")
    .description("the CLI's version and the server's")
    .option("--json")
    .action((options: { json?: boolean }) => printVersions(options));
}
