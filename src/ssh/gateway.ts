/**
 * The SSH server end of `ssh NAME.cvm`, inside cvm server. Each connection
 * arrives as the byte stream of one WebSocket that the API already
 * authenticated (token or session) and bound to one user and one of the
 * environments that user may reach; nothing listens on the node or in the
 * image. ssh2 speaks the protocol; each channel becomes a provider call:
 * sessions an exec (src/ssh/session.ts), direct-tcpip a dial into the
 * environment's loopback, agent forwarding a socket inside whose connections
 * come back to the client as auth-agent channels.
 *
 * SSH's own user authentication adds nothing here and is not asked for: who
 * is connecting was settled before the first SSH byte, by the same check as
 * every API request, and this server can only reach the one environment the
 * WebSocket was opened for. So any method (`none`, which OpenSSH tries
 * first, a public key, a password) is accepted, for that user and that
 * environment only; no key is registered, stored or compared, and no
 * credential sent at this layer can widen what the WebSocket allows. The SSH
 * user name picks the account inside: `root` is root, any other name the
 * image's own user (src/core/login-account.ts).
 */

import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import ssh2, { type AuthContext, type Connection, type ServerChannel, type TcpipRequestInfo } from "ssh2";
import type { Environment } from "../core/environment.js";
import type { AccountRequest } from "../core/login-account.js";
import type { Provider, UnixListener } from "../core/provider.js";
import type { Activity } from "../server/activity.js";
import type { Actor, AuditLog } from "../server/audit-log.js";
import type { LoginAccounts, ResolvedAccount } from "../server/login-accounts.js";
import { openAgentChannel } from "./agent-channel.js";
import type { HostKey } from "./host-key.js";
import { handleSession } from "./session.js";

const { Server } = ssh2;

export interface SshGatewayDeps {
  provider: Provider;
  loginAccounts: LoginAccounts;
  audit: AuditLog;
  /** An SSH connection is use of its environment while it is open (idle stop). */
  activity: Activity;
  logger: Logger;
}

/** What one SSH connection is for; its sessions and channels all share it. */
export interface ConnectionContext {
  actor: Actor;
  environment: Environment;
  /** Which account inside, from the SSH user name. */
  request: AccountRequest;
  deps: SshGatewayDeps;
  log: Logger;
  /** The path of this connection's forwarded agent inside, made on the first session that asks. */
  agentSocket(account: ResolvedAccount): Promise<string>;
  /** Ends everything this connection started when it closes. */
  onClose(cleanup: () => void): void;
}

/** Destinations of `ssh -L` that mean the environment itself: its loopback. */
const loopbackNames = new Set(["localhost", "127.0.0.1", "::1", "0.0.0.0", "::", "ip6-localhost"]);

export class SshGateway {
  constructor(
    private readonly hostKey: HostKey,
    private readonly deps: SshGatewayDeps,
  ) {}

  get publicKey(): string {
    return this.hostKey.publicKey;
  }

  /**
   * Serves one SSH connection arriving over `stream`, for `actor` into
   * `environment` (both already checked); resolves when it ends.
   */
  serve(stream: Duplex, actor: Actor, environment: Environment, remoteAddress = "127.0.0.1"): Promise<void> {
    const socket = Object.assign(stream, { remoteAddress, remotePort: 0, remoteFamily: "IPv4" });
    return new Promise((resolve) => {
      const server = new Server({ hostKeys: [this.hostKey.privateKey], ident: "cvm" }, (connection) => {
        this.connection(connection, actor, environment).finally(resolve);
      });
      server.injectSocket(socket as unknown as Socket);
    });
  }

  private async connection(connection: Connection, actor: Actor, environment: Environment): Promise<void> {
    const cleanups: (() => void)[] = [];
    let request: AccountRequest = "default";
    let agent: Promise<{ path: string; listener: UnixListener }> | undefined;
    const log = this.deps.logger.child({ environmentId: environment.id, email: actor.email, ssh: true });
    const context: ConnectionContext = {
      actor,
      environment,
      get request() {
        return request;
      },
      deps: this.deps,
      log,
      agentSocket: async (account) => {
        agent ??= this.forwardAgent(connection, environment, account, log);
        return (await agent).path;
      },
      onClose: (cleanup) => cleanups.push(cleanup),
    };
    cleanups.push(() => {
      agent?.then(({ listener }) => listener.close()).catch(() => undefined);
    });

    connection.on("authentication", (auth: AuthContext) => {
      // See the header: the WebSocket decided who this is; SSH's own methods are accepted as they come.
      request = auth.username === "root" ? "root" : "default";
      auth.accept();
    });
    connection.on("ready", () => {
      cleanups.push(this.deps.activity.hold(environment.id));
      log.info({ account: request }, "ssh connection opened");
      this.deps.audit
        .record(actor, "environment.ssh", `environment/${environment.id}`, null, { account: request })
        .catch((error) => log.warn({ err: error }, "auditing an SSH connection"));
    });
    connection.on("session", (accept) => handleSession(accept(), context));
    connection.on("tcpip", (accept, reject, info: TcpipRequestInfo) => {
      this.directTcpip(context, info, accept, reject);
    });
    // Listening on the environment's side (ssh -R) and unix-socket forwarding are not offered.
    connection.on("request", (_accept, reject) => reject?.());
    connection.on("error", (error) => log.debug({ err: error }, "ssh connection error"));
    // The WebSocket's end is the connection's: ssh2 reports the stream's end before (or instead of) its close.
    await new Promise<void>((resolve) => {
      connection.once("end", () => resolve());
      connection.once("close", () => resolve());
    });
    for (const cleanup of cleanups.splice(0)) cleanup();
    log.info("ssh connection closed");
  }

  /** `ssh -L`: a connection to a port on the environment's loopback, as sshd would make from inside. */
  private directTcpip(
    context: ConnectionContext,
    info: TcpipRequestInfo,
    accept: () => ServerChannel,
    reject: () => void,
  ): void {
    if (!loopbackNames.has(info.destIP)) {
      context.log.info({ destination: info.destIP, port: info.destPort }, "ssh -L refused: not the environment");
      reject();
      return;
    }
    this.deps.provider.dial(context.environment, info.destPort).then(
      (socket) => {
        const channel = accept();
        bridge(channel, socket);
        context.onClose(() => socket.destroy());
      },
      (error) => {
        context.log.info({ port: info.destPort, err: error }, "ssh -L: could not connect");
        reject();
      },
    );
  }

  /** A socket inside for SSH_AUTH_SOCK; each connection to it becomes an agent channel to the client. */
  private async forwardAgent(
    connection: Connection,
    environment: Environment,
    account: ResolvedAccount,
    log: Logger,
  ): Promise<{ path: string; listener: UnixListener }> {
    const path = `/tmp/cvm-ssh-${Math.random().toString(36).slice(2, 12)}/agent.sock`;
    const listener = await this.deps.provider.listenUnix(
      environment,
      { path, uid: account.uid, gid: account.gid },
      (socket) => {
        openAgentChannel(connection).then(
          (channel) => bridge(channel, socket),
          (error) => {
            log.info({ err: error }, "the SSH client refused an agent channel");
            socket.destroy();
          },
        );
      },
    );
    return { path, listener };
  }
}

/** Bytes both ways, each direction's end passed on as a half-close; an error on either side ends both. */
export function bridge(channel: ServerChannel, socket: Duplex): void {
  channel.pipe(socket);
  socket.pipe(channel);
  const end = () => {
    channel.destroy();
    socket.destroy();
  };
  channel.on("error", end);
  socket.on("error", end);
  channel.on("close", () => socket.destroy());
  socket.on("close", () => {
    if (!channel.destroyed) channel.end();
  });
}
