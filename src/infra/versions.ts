/**
 * Kernel and Kubernetes versions as nodes, providers and clouds print them:
 * `5.4.0-1049-gke`, `4.19.112+`, `v1.29.0-eks-a5ec690`, `1.27.3-gke.100`,
 * `v1.30.2+k3s1`. Only the leading major.minor[.patch] decides; whatever a
 * distribution or cloud appends after it is a build label.
 */

export interface Version {
  major: number;
  minor: number;
  patch: number;
}

const leadingVersion = /^\s*v?(\d+)\.(\d+)(?:\.(\d+))?/;

/** The version at the start of `text`, or undefined when it does not start with one. */
export function parseVersion(text: string): Version | undefined {
  const match = leadingVersion.exec(text);
  if (!match) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3] ?? 0) };
}

/** Negative when a < b, zero when equal, positive when a > b. */
export function compareVersions(a: Version, b: Version): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

export function atLeast(version: Version, minimum: Version): boolean {
  return compareVersions(version, minimum) >= 0;
}

/** `5.4` or `1.17.0` to a Version; throws on a malformed literal (a programming error). */
export function version(text: string): Version {
  const parsed = parseVersion(text);
  if (!parsed) throw new Error(`not a version: ${text}`);
  return parsed;
}

export function formatVersion(v: Version): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}
