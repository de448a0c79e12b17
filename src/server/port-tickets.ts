/**
 * Tickets that let a browser open one shared port as one viewer, where the
 * dashboard's session cookie cannot be used: on a port's own host under the
 * wildcard host, and on the path form, whose pages run sandboxed for anyone
 * but the owner. A ticket names the viewer, the environment and the port,
 * expires, and is signed (HMAC-SHA-256) with a key made once in the data
 * dir, 0600; replicas share it as they share the SSH host key. The share
 * itself is checked again on every request: a ticket only says who asks,
 * and through which session (its token), so that the connections it opens
 * are held with that session and end with it.
 */

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmod, open, readFile } from "node:fs/promises";
import { join } from "node:path";

export const ticketKeyFile = "port-tickets.key";

export interface TicketClaims {
  viewerId: string;
  /** The session (token id) the ticket was issued to. */
  tokenId: string;
  environmentId: string;
  port: number;
}

async function loadKey(dataDir: string): Promise<Buffer> {
  const path = join(dataDir, ticketKeyFile);
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const key = randomBytes(32);
  try {
    const file = await open(path, "wx", 0o600);
    await file.writeFile(key);
    await file.close();
    await chmod(path, 0o600);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return readFile(path);
  }
}

export class PortTickets {
  private constructor(private readonly key: Buffer) {}

  static async open(dataDir: string): Promise<PortTickets> {
    return new PortTickets(await loadKey(dataDir));
  }

  private sign(payload: string): string {
    return createHmac("sha256", this.key).update(payload).digest("base64url");
  }

  issue(claims: TicketClaims, ttlMs: number, now = Date.now()): string {
    const payload = Buffer.from(
      JSON.stringify({
        v: claims.viewerId,
        t: claims.tokenId,
        e: claims.environmentId,
        p: claims.port,
        x: now + ttlMs,
      }),
    ).toString("base64url");
    return `${payload}.${this.sign(payload)}`;
  }

  /** What a ticket says, when it is genuine, unexpired, and for this environment's port. */
  verify(ticket: string | undefined, environmentId: string, port: number, now = Date.now()): TicketClaims | undefined {
    const [payload, signature, extra] = (ticket ?? "").split(".");
    if (!payload || !signature || extra !== undefined) return undefined;
    const expected = Buffer.from(this.sign(payload));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    try {
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as {
        v: string;
        t: string;
        e: string;
        p: number;
        x: number;
      };
      if (claims.e !== environmentId || claims.p !== port || claims.x < now || typeof claims.t !== "string") {
        return undefined;
      }
      return { viewerId: claims.v, tokenId: claims.t, environmentId, port };
    } catch {
      return undefined;
    }
  }
}
