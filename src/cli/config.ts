/**
 * Where the CLI finds its server and token: CVM_URL and CVM_TOKEN, else the
 * config file that `cvm login` writes (0600, in the user's config dir).
 */

import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { CvmClient } from "../client/index.js";
import { CvmError } from "../core/errors.js";
import { cliProduct } from "../core/token-description.js";
import { cvmVersion } from "../core/version.js";
import { httpTransport } from "./http-transport.js";

export interface CliConfig {
  url: string;
  token: string;
}

export function configPath(): string {
  const base = process.env.CVM_CONFIG_DIR ?? join(process.env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "cvm");
  return join(base, "config.json");
}

export function readConfig(): Partial<CliConfig> {
  try {
    return JSON.parse(readFileSync(configPath(), "utf8")) as Partial<CliConfig>;
  } catch {
    return {};
  }
}

export function writeConfig(config: CliConfig): void {
  const path = configPath();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

export function forgetConfig(): void {
  rmSync(configPath(), { force: true });
}

/** How the CLI names itself to the server, so its sessions read "CLI login" in `cvm tokens list`. */
export const userAgent = `${cliProduct}/${cvmVersion} node/${process.versions.node} ${process.platform}`;

/** A client of the server at `url`, as the CLI, over the CLI's own transport. */
export function clientFor(url: string, token?: string): CvmClient {
  return new CvmClient({ baseUrl: url, token, userAgent, fetch: httpTransport });
}

/** The server and token the CLI is configured with: the environment's, else the config file's. */
export function configured(): Partial<CliConfig> {
  const file = readConfig();
  return { url: process.env.CVM_URL ?? file.url, token: process.env.CVM_TOKEN ?? file.token };
}

/** A client for the configured server; refuses clearly when there is none. */
export function configuredClient(): CvmClient {
  const { url, token } = configured();
  if (!url) {
    throw new CvmError("UNAUTHORIZED", "Not logged in: run `cvm login URL`, or set CVM_URL and CVM_TOKEN");
  }
  return clientFor(url, token);
}
