/**
 * Ports of an environment opened through the server: who may open one (the
 * owner; every signed-in user or anyone once the owner shares it, public
 * sharing only where the site allows it), and the names a port is reached
 * by: the path /@owner/NAME/ports/PORT/ on the server's own host, and the
 * host PORT--NAME--owner.HOST where an admin set a wildcard host.
 */

export const portShares = ["private", "authenticated", "public"] as const;
export type PortShare = (typeof portShares)[number];

export interface SharedPort {
  port: number;
  share: PortShare;
}

export function portProblem(port: unknown): string | undefined {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    return "must be a TCP port, 1 to 65535";
  }
  return undefined;
}

/**
 * The owner's part of a port's address: the local part of their email, in
 * the letters a host name allows. Two owners may share one; a lookup that
 * finds both refuses rather than pick (resolveByHandle).
 */
export function ownerHandle(email: string): string {
  const local = email.split("@")[0] ?? "";
  const handle = local
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^-+|-+$/g, "");
  return handle || "user";
}

/** The one label of a port's host: PORT--NAME--owner. */
export function portHostLabel(port: number, name: string, handle: string): string {
  return `${port}--${name}--${handle}`;
}

export interface PortAddress {
  port: number;
  name: string;
  handle: string;
}

/** The port named by a request's host under the wildcard host, if it is one. */
export function parsePortHost(host: string, wildcardHost: string): PortAddress | undefined {
  if (!wildcardHost) return undefined;
  const hostname = host.toLowerCase().replace(/:\d+$/, "");
  const base = wildcardHost.toLowerCase().replace(/^\*\./, "").replace(/:\d+$/, "");
  if (!hostname.endsWith(`.${base}`)) return undefined;
  const label = hostname.slice(0, -(base.length + 1));
  const match = /^(\d{1,5})--([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)--([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)$/.exec(label);
  if (!match) return undefined;
  const port = Number(match[1]);
  if (portProblem(port)) return undefined;
  return { port, name: match[2], handle: match[3] };
}

/** Who asks to open a port: nobody signed in, or a user. */
export interface PortViewer {
  id: string;
}

export type PortAccess =
  /** The owner: served as it is. */
  | "owner"
  /** Someone the share lets in: served, but never with the power of their session on the dashboard's origin. */
  | "shared"
  /** Nobody signed in, and the port is not public. */
  | "sign-in"
  /** Signed in, and the port is not shared with them: as if it did not exist. */
  | "not-found";

/**
 * The rule, checked on every request. A public share where the site forbids
 * public sharing counts as shared with signed-in users only.
 */
export function portAccess(input: {
  viewer?: PortViewer;
  ownerId: string;
  share: PortShare;
  publicAllowed: boolean;
}): PortAccess {
  const { viewer, ownerId, publicAllowed } = input;
  const share = input.share === "public" && !publicAllowed ? "authenticated" : input.share;
  if (viewer?.id === ownerId) return "owner";
  if (share === "public") return "shared";
  if (!viewer) return "sign-in";
  return share === "authenticated" ? "shared" : "not-found";
}

/**
 * Why a connection a port's share let in may no longer stay open, with the
 * share and the site's setting as they are now (an open WebSocket is one
 * long request: the rule is asked again while it lasts); undefined while
 * the rule still lets its viewer in. The reason is what the viewer is told.
 */
export function portShareEnded(
  input: Parameters<typeof portAccess>[0] & { port: number; name: string },
): string | undefined {
  const access = portAccess(input);
  if (access === "owner" || access === "shared") return undefined;
  if (input.share === "public" && !input.publicAllowed)
    return "Public sharing of ports was turned off by the site admins";
  if (input.share === "authenticated")
    return `Port ${input.port} of ${input.name} is now shared with signed-in users only`;
  return `The owner made port ${input.port} of ${input.name} private`;
}
