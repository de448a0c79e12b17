/**
 * Why an engine failed to pull an image, told apart by the engine's own words,
 * so that the docker provider and the CVM supervisor name a failure alike.
 */

export type PullFailure = "auth" | "tls" | "not-found" | "disk-full" | "unreachable" | "transient" | "other";

/** The engine's error text -> what kind of failure it is; the first match wins. */
const failurePatterns: [RegExp, PullFailure][] = [
  [/no space left on device|disk quota exceeded/i, "disk-full"],
  [
    /unauthorized|authentication required|no basic auth credentials|denied: requested access|incorrect username or password|\b401\b/i,
    "auth",
  ],
  [/x509|certificate|tls:|server gave HTTP response to HTTPS client/i, "tls"],
  [/manifest unknown|not found|does not exist|no such image|name unknown|\b404\b/i, "not-found"],
  [/no such host|connection refused|network is unreachable|dial tcp|i\/o timeout|lookup /i, "unreachable"],
  [/timeout|temporar|connection reset|EOF|\b50[0234]\b|too many requests|\b429\b/i, "transient"],
];

export function classifyPullError(message: string): PullFailure {
  return failurePatterns.find(([pattern]) => pattern.test(message))?.[1] ?? "other";
}

/** Failures the same request may not meet a moment later. */
export const retryablePullFailures: ReadonlySet<PullFailure> = new Set(["transient", "unreachable"]);
