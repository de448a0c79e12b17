/**
 * What `cvm cluster gke|eks|aks` produces: the commands and files a user runs
 * to get a cluster that can host CVMs, after refusing what cannot (with the
 * reason). Each cloud keeps its rules as a table of refusals.
 */

import { invalid, type Validation } from "../../core/errors.js";
import type { RuntimeChoice } from "../../core/settings.js";
import { atLeast, parseVersion, type Version } from "../versions.js";

export interface ClusterFile {
  /** Where the user should save it (or where cvm wrote it). */
  path: string;
  content: string;
}

export interface ClusterPlan {
  cloud: "gke" | "eks" | "aks";
  /** Files to save first (the eksctl ClusterConfig). */
  files: ClusterFile[];
  /** The commands to run, in order, each one shell-ready. */
  commands: string[];
  /** Steps on the nodes, for sysbox where that is the runtime. */
  nodeSteps: string[];
  /** What the plan chose on the user's behalf, and why. */
  notes: string[];
}

/** One reason a request cannot host CVMs. */
export interface Refusal<Request> {
  field: string;
  refuses(request: Request): boolean;
  reason(request: Request): string;
}

/** Every refusal that applies, as one BAD_REQUEST listing each field and its reason. */
export function refuse<Request>(rules: Refusal<Request>[], request: Request, what: string): void {
  const problems: Validation[] = rules
    .filter((rule) => rule.refuses(request))
    .map((rule) => ({ field: rule.field, detail: rule.reason(request) }));
  if (problems.length > 0) throw invalid(problems, `This ${what} cannot host CVMs`);
}

/** A version older than `minimum`; undefined (the cloud's default) and `latest` are never older. */
export function olderThan(text: string | undefined, minimum: Version, aliases: string[] = []): boolean {
  if (text === undefined || aliases.includes(text)) return false;
  const parsed = parseVersion(text);
  return parsed !== undefined && !atLeast(parsed, minimum);
}

export function notAVersion(text: string | undefined, aliases: string[] = []): boolean {
  return text !== undefined && !aliases.includes(text) && parseVersion(text) === undefined;
}

/** Quotes an argument for a POSIX shell only when it needs it. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A command line from words; a `--flag` followed by its value stays on one line. */
export function shellCommand(words: (string | undefined | false)[]): string {
  const kept = words.filter((w): w is string => typeof w === "string");
  const lines: string[] = [];
  let line: string[] = [];
  for (const word of kept) {
    if (word.startsWith("--") && line.length > 0) {
      lines.push(line.join(" "));
      line = [];
    }
    line.push(shellWord(word));
  }
  lines.push(line.join(" "));
  return lines.join(" \\\n  ");
}

/** Only sysbox needs anything on the nodes; the built-in runtime ships inside the supervisor image. */
export function needsSysbox(runtime: RuntimeChoice): boolean {
  return runtime === "sysbox";
}
