/**
 * The terminal: a WebSocket on /api/v1/environments/:ref/terminal, served on
 * the server's shared upgrade router (./upgrade.ts), bridged to provider.exec. Binary frames
 * carry bytes with a leading stream byte (0 stdin, 1 stdout, 2 stderr); text
 * frames carry JSON control messages (resize, eof; exit, error). The upgrade
 * passes the same Host and origin checks as every request, and the session
 * is held open in OpenConnections, so it ends when its access does.
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { Environment } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import type { ExecSession } from "../core/provider.js";
import type { User } from "../core/user.js";
import { execAs } from "../server/login-accounts.js";
import type { HeldSession } from "../server/open-connections.js";
import { apiPrefix, type TerminalClientMessage, type TerminalServerMessage, terminalStream } from "./contract.js";
import { parse } from "./input.js";
import type { ApiDeps, ApiRoutes } from "./routes.js";
import { isSet, terminalClientMessageSchema, terminalCommandSchema, terminalQuerySchema } from "./schemas.js";
import { TerminalCounts } from "./terminal-quota.js";
import { authenticateUpgrade, decodeRef, type Upgrades } from "./upgrade.js";

const terminalPath = new RegExp(`^${apiPrefix}/environments/([^/]+)/terminal$`);

/** WebSocket close code for "policy violation": the client should not simply reconnect. */
const accessEndedCode = 1008;

function parseCommand(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new CvmError("BAD_REQUEST", "command must be a JSON array of strings", {
      validations: [{ field: "command", detail: 'must be a JSON array of strings, such as ["ls","-l"]' }],
    });
  }
  return parse(terminalCommandSchema.describe("command"), value, "command");
}

export function documentTerminal(routes: ApiRoutes): void {
  routes.document({
    method: "get",
    path: "/environments/:ref/terminal",
    summary:
      "WebSocket: a shell (or `command`) in a running environment. Binary frames: a stream byte (0 stdin, 1 stdout, 2 stderr) then bytes; text frames: JSON {type: resize|eof} from the client, {type: exit, code} or {type: error, message} from the server",
    tag: "environments",
    query: terminalQuerySchema,
    response: "websocket",
    status: 101,
    errors: [403, 409],
  });
}

export function attachTerminal(upgrades: Upgrades, deps: ApiDeps): { close(): void } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  const sessions = new Set<{ ws: WebSocket; exec: ExecSession }>();
  const terminals = new TerminalCounts();

  async function upgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    match: RegExpExecArray,
    url: URL,
  ): Promise<void> {
    const session = await authenticateUpgrade(request, deps);
    const { user } = session;
    const query = parse(terminalQuerySchema, Object.fromEntries(url.searchParams), "query");
    const command = parseCommand(query.command);
    const environment = await deps.environments.find(user, decodeRef(match[1]));
    if (environment.state !== "running") {
      throw new CvmError("CONFLICT", `The environment is ${environment.state}: start it first`);
    }
    const tty = query.tty === undefined ? true : isSet(query.tty);
    // The image's own user in its home with its login shell, or root when asked.
    const account = await deps.workspace.loginAccounts.resolve(environment, query.user === "root" ? "root" : "default");
    const release = terminals.take(user, (await deps.settings.get()).quotas.terminals);
    let exec: ExecSession;
    try {
      exec = await deps.provider.exec(
        environment,
        execAs(
          account,
          command,
          {
            tty,
            cols: query.cols ?? 80,
            rows: query.rows ?? 24,
            env: tty ? { TERM: "xterm-256color" } : undefined,
          },
          environment.cpu,
        ),
      );
    } catch (error) {
      release();
      throw error;
    }
    if (socket.destroyed) {
      release();
      exec.kill();
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      ws.once("close", release);
      bridge(ws, exec, environment, session);
    });
  }

  function bridge(ws: WebSocket, exec: ExecSession, environment: Environment, session: HeldSession): void {
    const environmentId = environment.id;
    const entry = { ws, exec };
    sessions.add(entry);
    // An open terminal is use of the environment (idle stop).
    const inUse = deps.workspace.activity.hold(environmentId);
    deps.logger.info({ environmentId, email: session.user.email }, "terminal opened");
    let exited = false;
    const control = (message: TerminalServerMessage) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
    };
    exec.onOutput((stream, data) => {
      if (ws.readyState !== ws.OPEN) return;
      const frame = Buffer.allocUnsafe(data.length + 1);
      frame[0] = terminalStream[stream];
      frame.set(data, 1);
      ws.send(frame, { binary: true });
    });
    ws.on("message", (data, isBinary) => {
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary) {
        if (bytes[0] === terminalStream.stdin) exec.write(bytes.subarray(1));
        return;
      }
      let message: TerminalClientMessage;
      try {
        message = terminalClientMessageSchema.parse(JSON.parse(bytes.toString("utf8")));
      } catch {
        return control({
          type: "error",
          message: 'unknown control message: expected {"type":"resize",cols,rows} or {"type":"eof"}',
        });
      }
      if (message.type === "resize") exec.resize(message.cols, message.rows).catch(() => undefined);
      else exec.end();
    });
    // The environment stopping or going away ends the session.
    const unsubscribe = deps.bus.subscribe((event) => {
      const gone =
        event.type === "deleted"
          ? event.id === environmentId
          : event.environment.id === environmentId && event.environment.state !== "running";
      if (gone && !exited) {
        control({ type: "error", message: "The environment stopped" });
        exec.kill();
      }
    });
    // Logout, revocation, deactivation or a role that may no longer see the environment ends the session.
    const release = deps.connections.hold(session, {
      kind: "terminal",
      allows: (user: User) => deps.environments.canSee(user, environment),
      end(reason) {
        control({ type: "error", message: `Access ended: ${reason}` });
        if (!exited) exec.kill();
        ws.close(accessEndedCode, "access ended");
        // A peer that never answers the close handshake is cut.
        setTimeout(() => ws.terminate(), 1000).unref();
      },
    });
    ws.on("close", () => {
      release();
      inUse();
      unsubscribe();
      sessions.delete(entry);
      if (!exited) exec.kill();
    });
    ws.on("error", () => ws.terminate());
    exec.exited.then(
      async (code) => {
        exited = true;
        // Output still in flight is delivered before the exit message.
        await new Promise((resolve) => setImmediate(resolve));
        control({ type: "exit", code });
        ws.close(1000, "exited");
      },
      (error) => {
        exited = true;
        control({ type: "error", message: error instanceof Error ? error.message : String(error) });
        ws.close(1011, "exec failed");
      },
    );
  }

  upgrades.route(terminalPath, upgrade);

  return {
    close() {
      for (const { ws, exec } of sessions) {
        exec.kill();
        ws.close(1001, "server stopping");
      }
      wss.close();
    },
  };
}
