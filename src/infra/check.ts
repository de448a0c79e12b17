/**
 * The shape every infrastructure check shares: it reads its evidence from the
 * real system, then a pure judge turns that evidence into a verdict. Keeping
 * the two apart lets tests feed a judge evidence this machine cannot produce
 * (an old kernel, an enforcing AppArmor without cvm's profile).
 */

import type { CheckProgress, CheckResult, CheckStatus } from "../api/contract.js";

/** What a run of checks tells as it goes: each check as it starts, then its result. */
export type OnCheckProgress = (progress: Exclude<CheckProgress, { type: "done" }>) => void;

export interface Verdict {
  status: CheckStatus;
  /** What was read, verbatim where it came from a file, a command or an API. */
  evidence: string;
  /** What to do about it; every warn and fail has one. */
  remedy?: string;
}

export interface Check<Evidence, Context> {
  id: string;
  title: string;
  /** Whether the check concerns this context at all (a sysbox-only check under the built-in runtime does not). */
  applies?: (context: Context) => boolean;
  read(context: Context): Promise<Evidence>;
  judge(evidence: Evidence, context: Context): Verdict;
  /** The remedy when the evidence cannot be read at all (the reader threw). */
  unreadable?: string;
}

/** A check with its evidence type hidden, so checks of different evidence share one table. */
export interface AnyCheck<Context> {
  id: string;
  title: string;
  applies(context: Context): boolean;
  run(context: Context): Promise<CheckResult>;
}

export function defineCheck<Evidence, Context>(check: Check<Evidence, Context>): AnyCheck<Context> {
  return {
    id: check.id,
    title: check.title,
    applies: (context) => check.applies?.(context) ?? true,
    async run(context) {
      try {
        const verdict = check.judge(await check.read(context), context);
        return { id: check.id, title: check.title, ...verdict };
      } catch (error) {
        // A reader that breaks is itself a finding: say what broke rather than hide the check.
        return {
          id: check.id,
          title: check.title,
          status: "fail",
          evidence: `could not read: ${errorText(error)}`,
          remedy:
            check.unreadable ??
            "Run `cvm doctor` where the failing read is allowed (as root, on the node), or report this as a bug.",
        };
      }
    },
  };
}

export async function runChecks<Context>(
  checks: AnyCheck<Context>[],
  context: Context,
  onProgress?: OnCheckProgress,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const check of checks) {
    if (!check.applies(context)) continue;
    onProgress?.({ type: "running", id: check.id, title: check.title });
    const result = await check.run(context);
    onProgress?.({ type: "result", check: result });
    results.push(result);
  }
  return results;
}

/** How bad each result is, for the one that decides: not applicable counts as passing. */
export const severity: Record<CheckStatus, number> = { "not-applicable": 0, pass: 0, warn: 1, fail: 2 };

export function worstStatus(results: readonly Pick<CheckResult, "status">[]): CheckStatus {
  return results.reduce<CheckStatus>((worst, r) => (severity[r.status] > severity[worst] ? r.status : worst), "pass");
}

/** An error in the words of whoever raised it: an API server's Status message when there is one. */
export function errorText(error: unknown): string {
  const body = (error as { body?: unknown } | undefined)?.body;
  if (typeof body === "string" && body.startsWith("{")) {
    try {
      const message = (JSON.parse(body) as { message?: unknown }).message;
      if (typeof message === "string") return message;
    } catch {
      // not JSON after all: fall through to the error's own message
    }
  }
  return error instanceof Error ? error.message : String(error);
}

export const pass = (evidence: string): Verdict => ({ status: "pass", evidence });
/** The check asks about something this installation does not have, so it neither passes nor fails. */
export const notApplicable = (evidence: string): Verdict => ({ status: "not-applicable", evidence });
export const warn = (evidence: string, remedy: string): Verdict => ({ status: "warn", evidence, remedy });
export const fail = (evidence: string, remedy: string): Verdict => ({ status: "fail", evidence, remedy });
