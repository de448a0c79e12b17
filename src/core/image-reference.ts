/**
 * OCI image references, by the grammar of the distribution spec
 * (github.com/distribution/reference): [domain[:port]/]path[:tag][@digest].
 */

export interface ImageReference {
  /** Registry host with port, when the reference names one. */
  domain?: string;
  /** Repository path, without domain. */
  path: string;
  tag?: string;
  digest?: string;
}

const alphaNumeric = "[a-z0-9]+";
const separator = "(?:[_.]|__|[-]+)";
const pathComponent = `${alphaNumeric}(?:${separator}${alphaNumeric})*`;
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const domainName = `${domainComponent}(?:\\.${domainComponent})*`;
const ipv6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const domain = `(?:${domainName}|${ipv6})(?::[0-9]+)?`;
const tag = "[\\w][\\w.-]{0,127}";
const digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";

const pathPattern = new RegExp(`^${pathComponent}(?:/${pathComponent})*$`);
const domainPattern = new RegExp(`^${domain}$`);
const tagPattern = new RegExp(`^${tag}$`);
const digestPattern = new RegExp(`^${digest}$`);

const maxNameLength = 255;

/**
 * The grammar allows any algorithm with 32+ hex digits, but the OCI image spec
 * pins the registered ones to lowercase hex of one length; an engine refuses
 * anything else, so it is refused here, where the user sees which field.
 */
const registeredDigests = new Map<string, RegExp>([
  ["sha256", /^[a-f0-9]{64}$/],
  ["sha512", /^[a-f0-9]{128}$/],
]);

function digestIsValid(value: string): boolean {
  if (!digestPattern.test(value)) return false;
  const [algorithm, hex] = value.split(":");
  return registeredDigests.get(algorithm)?.test(hex) ?? true;
}

/** Parses a reference, or returns why it is not one. */
export function parseImageReference(input: string): ImageReference | { problem: string } {
  if (input.length === 0) return { problem: "is required" };
  if (input !== input.trim()) return { problem: "must not have surrounding spaces" };
  let rest = input;
  let digestPart: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digestPart = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestIsValid(digestPart)) {
      return { problem: "has an invalid digest (expected algorithm:hex, such as sha256:<64 hex digits>)" };
    }
  }
  let tagPart: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const lastColon = rest.lastIndexOf(":");
  if (lastColon > lastSlash) {
    tagPart = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!tagPattern.test(tagPart)) {
      return {
        problem: "has an invalid tag (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')",
      };
    }
  }
  if (rest.length === 0) return { problem: "has no repository name" };
  if (rest.length > maxNameLength) return { problem: `has a name longer than ${maxNameLength} characters` };
  let domainPart: string | undefined;
  let pathPart = rest;
  const firstSlash = rest.indexOf("/");
  if (firstSlash >= 0) {
    const first = rest.slice(0, firstSlash);
    if (first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase()) {
      domainPart = first;
      pathPart = rest.slice(firstSlash + 1);
      if (!domainPattern.test(domainPart)) return { problem: `has an invalid registry host "${domainPart}"` };
    }
  }
  if (!pathPattern.test(pathPart)) {
    return {
      problem:
        "has an invalid repository name (lowercase letters, digits and separators '.', '_', '__', '-', in '/'-separated parts)",
    };
  }
  const reference: ImageReference = { path: pathPart };
  if (domainPart !== undefined) reference.domain = domainPart;
  if (tagPart !== undefined) reference.tag = tagPart;
  if (digestPart !== undefined) reference.digest = digestPart;
  return reference;
}

export function isImageReference(value: ImageReference | { problem: string }): value is ImageReference {
  return !("problem" in value);
}

/** Docker Hub's credentials are keyed by its index, not by a host in the name. */
export const dockerHubServer = "https://index.docker.io/v1/";

/** Where engines and kubelets look up an image's registry credentials: its registry host, else Docker Hub's index. */
export function credentialServer(image: string): string {
  const parsed = parseImageReference(image);
  return (isImageReference(parsed) && parsed.domain) || dockerHubServer;
}
