/**
 * Where a request came from and which name it used, read once for the HTTP
 * routes and the WebSocket upgrade alike: the client's address (sign-in
 * throttling), the Host it named (refused unless it names this server: DNS
 * rebinding), and its own origin (cross-site writes). X-Forwarded-* count only
 * with --proxy-trusted, and then only the hop the proxy itself added.
 */

import { isIP } from "node:net";

export interface SiteAddress {
  /** The URL people reach the server at: --access-url, or the listen address. */
  accessUrl: URL;
  /** Other names this server answers to: the URL supervisors report to inside a cluster. */
  otherHosts: readonly string[];
  /** Trust X-Forwarded-For, -Proto and -Host (one reverse proxy in front, which sets them). */
  proxyTrusted: boolean;
}

/** What the rules read of a request, from Hono's context or a raw upgrade request. */
export interface RequestFacts {
  header(name: string): string | undefined;
  /** The peer's address on the TCP connection. */
  remoteAddress: string | undefined;
  /** Whether the connection itself is TLS. */
  encrypted: boolean;
}

/** The last value of a comma-separated header: the one the nearest proxy added. */
function nearest(value: string | undefined): string | undefined {
  const last = value?.split(",").at(-1)?.trim();
  return last || undefined;
}

/** IPv4-mapped IPv6 (`::ffff:127.0.0.1`) reads as the IPv4 address it is. */
function plainAddress(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

export function clientAddress(request: RequestFacts, site: SiteAddress): string {
  const forwarded = site.proxyTrusted ? nearest(request.header("x-forwarded-for")) : undefined;
  const address = forwarded && isIP(forwarded) ? forwarded : request.remoteAddress;
  return address ? plainAddress(address) : "unknown";
}

export function requestHost(request: RequestFacts, site: SiteAddress): string | undefined {
  return (site.proxyTrusted ? nearest(request.header("x-forwarded-host")) : undefined) ?? request.header("host");
}

export function requestProtocol(request: RequestFacts, site: SiteAddress): "http:" | "https:" {
  const forwarded = site.proxyTrusted ? nearest(request.header("x-forwarded-proto")) : undefined;
  if (forwarded === "https" || forwarded === "http") return `${forwarded}:`;
  return request.encrypted ? "https:" : "http:";
}

/** `example.com:7080` → `example.com`; `[::1]:7080` → `::1`. */
export function hostName(host: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed) return bracketed[1].toLowerCase();
  const colons = host.split(":").length - 1;
  return (colons === 1 ? host.slice(0, host.indexOf(":")) : host).toLowerCase();
}

/**
 * Whether a Host names this server. An IP literal or a loopback name always
 * may: DNS rebinding needs a name the attacker's DNS answers for, so only
 * names are checked, against the access URL's and the other known ones.
 */
export function hostAllowed(host: string | undefined, site: SiteAddress): boolean {
  if (!host) return false;
  const name = hostName(host);
  if (isIP(name) || name === "localhost" || name.endsWith(".localhost")) return true;
  return name === site.accessUrl.hostname.toLowerCase() || site.otherHosts.some((h) => hostName(h) === name);
}

/** The origin the request itself was made to, as its browser would write it. */
export function requestOrigin(request: RequestFacts, site: SiteAddress): string | undefined {
  const host = requestHost(request, site);
  if (!host) return undefined;
  try {
    return new URL(`${requestProtocol(request, site)}//${host}`).origin;
  } catch {
    return undefined;
  }
}

/** Whether a browser's Origin header is this server's own: the access URL's origin or the one the request was made to. */
export function originAllowed(origin: string | undefined, request: RequestFacts, site: SiteAddress): boolean {
  if (!origin || origin === "null") return false;
  return origin === site.accessUrl.origin || origin === requestOrigin(request, site);
}
