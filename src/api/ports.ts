/**
 * Ports over the API: the list of an environment's ports (listening inside,
 * live, and shared), the owner's share of each, the hand-off that opens a
 * port on its own host under the wildcard host, and the WebSocket
 * /environments/:ref/ports/:port/connect that `cvm port-forward` opens per
 * TCP connection (raw after the 101, or binary WebSocket frames). Each
 * connection is held in OpenConnections with the session that opened it, so
 * it ends within 2 s of access ending.
 */

import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createWebSocketStream, type WebSocket, WebSocketServer } from "ws";
import type { Environment } from "../core/environment.js";
import { CvmError, notFound } from "../core/errors.js";
import { ownerHandle, portHostLabel, portProblem } from "../core/ports.js";
import type { User } from "../core/user.js";
import { closeReason, policyViolation } from "../ports/websocket-ending.js";
import type { HeldSession } from "../server/open-connections.js";
import type { PortOpener, PortVia } from "../server/ports-service.js";
import { actorOf } from "./auth.js";
import { apiPrefix } from "./contract.js";
import { readJson, readQuery } from "./input.js";
import { type ApiDeps, type ApiRoutes, type AppContext, param } from "./routes.js";
import { authenticateUpgrade, decodeRef, type Upgrades } from "./upgrade.js";
import {
  portListSchema,
  portOpenQuerySchema,
  portShareSchema,
  rawUpgrade,
  setPortShareSchema,
} from "./workspace-schemas.js";

const connectPath = new RegExp(`^${apiPrefix}/environments/([^/]+)/ports/([^/]+)/connect$`);

/** How long a hand-off ticket in a URL lasts: just the redirect. */
export const handoffTicketMs = 60_000;

export function portNumber(raw: string): number {
  const port = Number(raw);
  const problem = /^\d+$/.test(raw) ? portProblem(port) : "must be a TCP port, 1 to 65535";
  if (problem)
    throw new CvmError("BAD_REQUEST", `port ${problem}`, { validations: [{ field: "port", detail: problem }] });
  return port;
}

/** http or https, as the client reached the server (behind a proxy, as it says). */
export function schemeOf(request: Pick<IncomingMessage, "headers" | "socket">): string {
  const forwarded = String(request.headers["x-forwarded-proto"] ?? "")
    .split(",")[0]
    ?.trim();
  if (forwarded === "https" || forwarded === "http") return forwarded;
  return (request.socket as { encrypted?: boolean }).encrypted ? "https" : "http";
}

function incomingOf(c: AppContext): IncomingMessage | undefined {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
}

export function portRoutes(routes: ApiRoutes): void {
  const { workspace, store } = routes.deps;
  const tag = "ports";

  routes.add(
    {
      method: "get",
      path: "/environments/:ref/ports",
      summary: "The environment's ports: those listening inside now, and those shared",
      tag,
      response: portListSchema,
    },
    async (c) => {
      const incoming = incomingOf(c);
      const scheme = incoming ? schemeOf(incoming) : "http";
      return c.json(await workspace.ports.list(actorOf(c), param(c, "ref"), scheme));
    },
  );
  routes.add(
    {
      method: "put",
      path: "/environments/:ref/ports/:port",
      summary: "Share a port (owner only): private, authenticated (every signed-in user) or public",
      tag,
      body: setPortShareSchema,
      response: portShareSchema,
      errors: [403],
    },
    async (c) => {
      const port = portNumber(param(c, "port"));
      const { share } = await readJson(c, setPortShareSchema);
      return c.json({ port, share: await workspace.ports.setShare(actorOf(c), param(c, "ref"), port, share) });
    },
  );
  routes.add(
    {
      method: "get",
      path: "/environments/:ref/ports/:port/open",
      summary:
        "Opens a port on its own host under the wildcard host: redirects there with a short-lived ticket for the signed-in user, if the port's share lets them in",
      tag,
      query: portOpenQuerySchema,
      response: null,
      status: 302,
      errors: [409],
    },
    async (c) => {
      const session = c.get("session");
      const port = portNumber(param(c, "port"));
      const { to = "/" } = readQuery(c, portOpenQuerySchema);
      if (!to.startsWith("/") || to.startsWith("//")) {
        throw new CvmError("BAD_REQUEST", "to must be a path starting with /", {
          validations: [{ field: "to", detail: "must be a path starting with /" }],
        });
      }
      // The port's share decides, not whether the caller may see the environment itself.
      const environment = await store.environments.get(param(c, "ref"));
      if (!environment) throw notFound(`Environment "${param(c, "ref")}"`);
      const access = await workspace.ports.access(environment, port, session.user);
      if (access === "not-found" || access === "sign-in") throw notFound(`Environment "${param(c, "ref")}"`);
      const { portsHost } = await routes.deps.settings.get();
      if (!portsHost) throw new CvmError("CONFLICT", "No wildcard host is set for ports (portsHost)");
      const ticket = workspace.tickets.issue(
        { viewerId: session.user.id, tokenId: session.token.id, environmentId: environment.id, port },
        handoffTicketMs,
      );
      const incoming = incomingOf(c);
      const host = `${portHostLabel(port, environment.name, ownerHandle(environment.ownerEmail))}.${portsHost.replace(/^\*\./, "")}`;
      const target = new URL(to, `${incoming ? schemeOf(incoming) : "http"}://${host}`);
      target.searchParams.set("cvm_ticket", ticket);
      return c.redirect(target.toString(), 302);
    },
  );
  routes.document({
    method: "get",
    path: "/environments/:ref/ports/:port/connect",
    summary:
      "Upgrade: one TCP connection to the port on the environment's loopback. With `Upgrade: cvm-tcp` (what `cvm port-forward` opens per connection) the connection carries the bytes as they are after the 101; as a WebSocket, binary frames carry them both ways",
    tag,
    response: "websocket",
    status: 101,
    errors: [403, 409],
  });
}

/**
 * Holds a connection to a port with the session that opened it (none for a
 * public port's anonymous viewer) and what let it in: logout, revocation,
 * deactivation, or (for one let in as the owner, not by a share) a role
 * that may no longer see the environment ends it; so does (for one a share
 * let in) a share or site setting that no longer allows it, and for all of
 * them the environment stopping or going. Answers the release.
 */
export function holdPortConnection(
  deps: ApiDeps,
  session: HeldSession | undefined,
  held: { environment: Environment; port: number; bySharing: boolean; via: PortVia; who: PortOpener },
  end: (reason: string) => void,
): () => void {
  const { environment, port, bySharing, via, who } = held;
  return deps.workspace.ports.hold(
    session,
    {
      environmentId: environment.id,
      port,
      admitted: bySharing ? "share" : "environment",
      via,
      who,
      allows: (user: User) => bySharing || deps.environments.canSee(user, environment),
    },
    end,
  );
}

export function attachPortConnect(upgrades: Upgrades, deps: ApiDeps): { close(): void } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024, perMessageDeflate: false });
  const open = new Set<WebSocket>();
  const raw = new Set<() => void>();

  async function upgrade(request: IncomingMessage, socket: Duplex, head: Buffer, match: RegExpExecArray) {
    const session = await authenticateUpgrade(request, deps);
    const { user } = session;
    const environment = await deps.environments.find(user, decodeRef(match[1]));
    const who = { actor: user, address: request.socket.remoteAddress };
    if (request.headers.upgrade?.toLowerCase() === rawUpgrade) {
      if (head.length > 0)
        throw new CvmError("BAD_REQUEST", `Send nothing before the ${rawUpgrade} upgrade is answered`);
      const answer = () =>
        new Promise<void>((resolve) =>
          socket.write(
            `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${rawUpgrade}\r\n\r\n`,
            () => resolve(),
          ),
        );
      const spliced = await deps.workspace.ports.connectSocket(
        environment,
        portNumber(match[2]),
        socket as Socket,
        answer,
        who,
      );
      const release = holdPortConnection(
        deps,
        session,
        { environment, port: portNumber(match[2]), bySharing: false, via: "forward", who },
        () => spliced.end(),
      );
      raw.add(spliced.end);
      spliced.finished.then(() => {
        release();
        raw.delete(spliced.end);
      });
      return;
    }
    const connection = await deps.workspace.ports.connect(environment, portNumber(match[2]), who, "forward");
    if (socket.destroyed) {
      connection.destroy();
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      open.add(ws);
      const stream = createWebSocketStream(ws);
      stream.pipe(connection);
      connection.pipe(stream);
      const end = () => {
        connection.destroy();
        stream.destroy();
      };
      stream.on("error", end);
      connection.on("error", end);
      connection.on("close", () => ws.close(1000));
      const release = holdPortConnection(
        deps,
        session,
        { environment, port: portNumber(match[2]), bySharing: false, via: "forward", who },
        (reason) => {
          ws.close(policyViolation, closeReason(reason));
          // The close frame goes first; the client's answer, or a second, ends the rest.
          connection.destroy();
          setTimeout(() => ws.terminate(), 1000).unref();
        },
      );
      ws.on("close", () => {
        release();
        open.delete(ws);
        end();
      });
    });
  }

  upgrades.route(connectPath, upgrade);
  return {
    close() {
      for (const ws of open) ws.close(1001, "server stopping");
      for (const end of raw) end();
      wss.close();
    },
  };
}
