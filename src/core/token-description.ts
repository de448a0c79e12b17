/**
 * What a token is, told to its owner: a CLI login, a browser's session (which
 * browser, on what), or an API token by its name. The server records the
 * User-Agent that created each token; this reads it, so `cvm tokens list`
 * shows rows a person can tell apart instead of a column of "session".
 */

import type { Token } from "./schemas.js";

/** The product the CLI names in its User-Agent (`cvm-cli/0.1.0 node/20.19.0 linux`). */
export const cliProduct = "cvm-cli";

// First match wins: Edge and Chrome both say Safari, Edge says Chrome too.
const browsers: [RegExp, string][] = [
  [/\bEdg(e|A|iOS)?\//, "Edge"],
  [/\bFirefox\//, "Firefox"],
  [/\b(Headless)?Chrom(e|ium)\//, "Chrome"],
  [/\bSafari\//, "Safari"],
];

const systems: [RegExp, string][] = [
  [/\bAndroid\b/, "Android"],
  [/\b(iPhone|iPad)\b/, "iOS"],
  [/\bWindows\b/, "Windows"],
  [/\bMac OS X\b/, "macOS"],
  [/\b(Linux|X11)\b/, "Linux"],
];

const firstMatch = (table: [RegExp, string][], text: string) => table.find(([pattern]) => pattern.test(text))?.[1];

export function describeToken(token: Pick<Token, "kind" | "name" | "userAgent">): string {
  if (token.kind === "api") return `API token "${token.name}"`;
  const agent = token.userAgent;
  if (!agent) return "session";
  if (agent.startsWith(`${cliProduct}/`)) return "CLI login";
  const browser = firstMatch(browsers, agent);
  if (browser) {
    const system = firstMatch(systems, agent);
    return `browser: ${browser}${system ? ` on ${system}` : ""}`;
  }
  // Another program (curl, a script): its own name says most.
  return `session: ${agent.split(" ")[0].slice(0, 40)}`;
}
