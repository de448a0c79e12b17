/**
 * SSH over the API: GET /ssh/host-key (what `cvm config-ssh` pins), and the
 * WebSocket /api/v1/environments/:ref/ssh that `cvm ssh --stdio` opens as
 * OpenSSH's ProxyCommand. The WebSocket carries the SSH connection's raw
 * bytes in binary frames, both ways; it is authenticated and bound to one
 * environment here, held in OpenConnections so it ends within 2 s of access
 * ending, and src/ssh/gateway.ts serves the SSH protocol over it.
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { createWebSocketStream, type WebSocket, WebSocketServer } from "ws";
import { CvmError } from "../core/errors.js";
import type { User } from "../core/user.js";
import { apiPrefix } from "./contract.js";
import type { ApiDeps, ApiRoutes } from "./routes.js";
import { authenticateUpgrade, decodeRef, type Upgrades } from "./upgrade.js";
import { sshHostKeySchema, sshHostSuffix } from "./workspace-schemas.js";

const sshPath = new RegExp(`^${apiPrefix}/environments/([^/]+)/ssh$`);

export function sshRoutes(routes: ApiRoutes): void {
  routes.add(
    {
      method: "get",
      path: "/ssh/host-key",
      summary: "The SSH host key every `ssh NAME.cvm` connection presents, for known_hosts",
      tag: "ssh",
      response: sshHostKeySchema,
    },
    (c) => c.json({ publicKey: routes.deps.workspace.ssh.publicKey, hostSuffix: sshHostSuffix }),
  );
  routes.document({
    method: "get",
    path: "/environments/:ref/ssh",
    summary:
      "WebSocket: an SSH connection into the environment (OpenSSH's ProxyCommand `cvm ssh --stdio NAME`). Binary frames carry the connection's bytes both ways; the SSH user `root` is root inside, any other the image's own user",
    tag: "ssh",
    response: "websocket",
    status: 101,
    errors: [403, 409],
  });
}

export function attachSsh(upgrades: Upgrades, deps: ApiDeps): { close(): void } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024, perMessageDeflate: false });
  const open = new Set<WebSocket>();

  async function upgrade(request: IncomingMessage, socket: Duplex, head: Buffer, match: RegExpExecArray) {
    const session = await authenticateUpgrade(request, deps);
    const { user } = session;
    const environment = await deps.environments.find(user, decodeRef(match[1]));
    if (environment.state !== "running") {
      throw new CvmError("CONFLICT", `Environment ${environment.name} is ${environment.state}: start it first`);
    }
    if (socket.destroyed) return;
    wss.handleUpgrade(request, socket, head, (ws) => {
      open.add(ws);
      const stream = createWebSocketStream(ws);
      stream.on("error", () => ws.terminate());
      // The environment stopping or going away ends its connections.
      const unsubscribe = deps.bus.subscribe((event) => {
        const gone =
          event.type === "deleted"
            ? event.id === environment.id
            : event.environment.id === environment.id && event.environment.state !== "running";
        if (gone) ws.close(1001, "the environment stopped");
      });
      // Logout, revocation, deactivation or a role that may no longer see the environment ends the connection.
      const release = deps.connections.hold(session, {
        kind: "ssh",
        allows: (now: User) => deps.environments.canSee(now, environment),
        end() {
          ws.close(1008, "access ended");
          // A peer that never answers the close handshake is cut.
          setTimeout(() => ws.terminate(), 1000).unref();
        },
      });
      ws.on("close", () => {
        release();
        unsubscribe();
        open.delete(ws);
        stream.destroy();
      });
      deps.workspace.ssh.serve(stream, user, environment, request.socket.remoteAddress).finally(() => ws.close());
    });
  }

  upgrades.route(sshPath, upgrade);
  return {
    close() {
      for (const ws of open) ws.close(1001, "server stopping");
      wss.close();
    },
  };
}
