/**
 * Ports of environments, on the server's side: which ports listen inside
 * (read live through the provider) and how each is shared, the owner's
 * changes to that, finding the environment a port address names, the access
 * rule on every request (src/core/ports.ts) and again, while they last, on
 * every connection held open (the port judge of OpenConnections), and the
 * audit of who opened what: each viewer's first use of a port within a
 * while, every change, and every connection a change ended.
 */

import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { Environment } from "../core/environment.js";
import { CvmError, notFound } from "../core/errors.js";
import {
  ownerHandle,
  type PortAccess,
  type PortAddress,
  type PortShare,
  portAccess,
  portHostLabel,
  portProblem,
  portShareEnded,
} from "../core/ports.js";
import type { Provider, SplicedSocket } from "../core/provider.js";
import type { Store } from "../core/store.js";
import type { User } from "../core/user.js";
import type { Activity } from "./activity.js";
import type { Actor, AuditLog } from "./audit-log.js";
import type { EnvironmentService } from "./environments/index.js";
import type { HeldPort, HeldSession, OpenConnections, PortJudge } from "./open-connections.js";
import type { SettingsService } from "./settings-service.js";

/** The provider's "nothing listens" said with the environment's name, for whoever asked. */
function nothingListens(environment: Environment, port: number) {
  return (error: unknown): never => {
    if (error instanceof CvmError && error.code === "UNAVAILABLE") {
      throw new CvmError("UNAVAILABLE", `Nothing listens on port ${port} in ${environment.name}`, {
        detail: error.message,
      });
    }
    throw error;
  };
}

/** One viewer opening one port is audited once in this long. */
const auditEveryMs = 10 * 60_000;

export interface PortInfo {
  port: number;
  listening: boolean;
  addresses: string[];
  share: PortShare;
  path: string;
  hostUrl?: string;
}

export type PortVia = "path" | "host" | "forward";

export interface PortsServiceDeps {
  store: Store;
  provider: Provider;
  environments: EnvironmentService;
  settings: SettingsService;
  audit: AuditLog;
  activity: Activity;
  connections: OpenConnections;
  logger: Logger;
}

/** Who opened a port connection, for the audit: a user, or an anonymous viewer's address. */
export interface PortOpener {
  actor?: Actor;
  address?: string;
}

/** Where a port opens on this server. */
export function portPath(environment: Pick<Environment, "name" | "ownerEmail">, port: number): string {
  return `/@${ownerHandle(environment.ownerEmail)}/${environment.name}/ports/${port}/`;
}

export class PortsService implements PortJudge {
  private readonly audited = new Map<string, number>();

  constructor(private readonly deps: PortsServiceDeps) {}

  private async shareOf(environmentId: string, port: number): Promise<PortShare> {
    const shares = await this.deps.store.workspace.portShares(environmentId);
    return shares.find((s) => s.port === port)?.share ?? "private";
  }

  /** Ports listening inside (live) and ports shared, one entry per port. */
  async list(actor: Actor, ref: string, scheme: string): Promise<{ items: PortInfo[]; publicPorts: boolean }> {
    const environment = await this.deps.environments.find(actor, ref);
    const settings = await this.deps.settings.get();
    const [listening, shares] = await Promise.all([
      environment.state === "running" ? this.deps.provider.listeningPorts(environment) : Promise.resolve([]),
      this.deps.store.workspace.portShares(environment.id),
    ]);
    const ports = new Set([...listening.map((l) => l.port), ...shares.map((s) => s.port)]);
    const items = [...ports]
      .sort((a, b) => a - b)
      .map((port): PortInfo => {
        const found = listening.find((l) => l.port === port);
        const share = shares.find((s) => s.port === port)?.share ?? "private";
        const host = settings.portsHost.replace(/^\*\./, "");
        return {
          port,
          listening: Boolean(found),
          addresses: found?.addresses ?? [],
          share,
          path: portPath(environment, port),
          ...(host
            ? {
                hostUrl: `${scheme}://${portHostLabel(port, environment.name, ownerHandle(environment.ownerEmail))}.${host}/`,
              }
            : {}),
        };
      });
    return { items, publicPorts: settings.publicPorts };
  }

  /** The owner shares a port, or makes it private again; audited. */
  async setShare(actor: Actor, ref: string, port: number, share: PortShare): Promise<PortShare> {
    const problem = portProblem(port);
    if (problem)
      throw new CvmError("BAD_REQUEST", `port ${problem}`, { validations: [{ field: "port", detail: problem }] });
    const environment = await this.deps.environments.find(actor, ref);
    if (environment.ownerId !== actor.id) {
      throw new CvmError("FORBIDDEN", "Only the environment's owner shares its ports");
    }
    if (share === "public" && !(await this.deps.settings.get()).publicPorts) {
      throw new CvmError("FORBIDDEN", "Public sharing of ports is turned off on this installation", {
        validations: [{ field: "share", detail: "public sharing is turned off by the site admins" }],
      });
    }
    const before = await this.shareOf(environment.id, port);
    await this.deps.store.workspace.setPortShare(environment.id, port, share, new Date().toISOString());
    await this.deps.audit.record(
      actor,
      "environment.port-share",
      `environment/${environment.id}/ports/${port}`,
      { share: before },
      { share },
    );
    // What the new share no longer allows ends now, not at the next poll.
    await this.deps.connections.recheck();
    return share;
  }

  /**
   * The environment a port address (/@owner/NAME or PORT--NAME--owner) names.
   * Two owners with one handle and one environment name are refused, never
   * guessed between.
   */
  async resolve(address: Pick<PortAddress, "name" | "handle">): Promise<Environment> {
    const named = await this.deps.store.environments.list({ name: address.name });
    const matching = named.filter((e) => e.state !== "deleted" && ownerHandle(e.ownerEmail) === address.handle);
    if (matching.length !== 1) throw notFound(`Environment ${address.handle}/${address.name}`);
    return matching[0];
  }

  /** The rule, checked on every request, with the share as stored now. */
  async access(environment: Environment, port: number, viewer: User | undefined): Promise<PortAccess> {
    const [share, settings] = await Promise.all([this.shareOf(environment.id, port), this.deps.settings.get()]);
    return portAccess({
      viewer: viewer?.active ? viewer : undefined,
      ownerId: environment.ownerId,
      share,
      publicAllowed: settings.publicPorts,
    });
  }

  /**
   * The rule asked again for connections held open (OpenConnections' port
   * judge): the environment must still run, and one a share let in must
   * still be let in by the share and the site's settings as stored now.
   * Reads each environment and its shares once, however many are held.
   */
  async rejudge(held: readonly { port: HeldPort; viewer?: User }[]): Promise<(string | undefined)[]> {
    const ids = [...new Set(held.map((h) => h.port.environmentId))];
    const [settings, environments, shares] = await Promise.all([
      this.deps.settings.get(),
      Promise.all(ids.map((id) => this.deps.store.environments.get(id))),
      Promise.all(ids.map((id) => this.deps.store.workspace.portShares(id))),
    ]);
    return held.map(({ port: { environmentId, port, admitted }, viewer }) => {
      const at = ids.indexOf(environmentId);
      const environment = environments[at];
      if (!environment || environment.state === "deleting" || environment.state === "deleted") {
        return `Environment ${environment?.name ?? environmentId} was deleted`;
      }
      if (environment.state !== "running") return `Environment ${environment.name} is ${environment.state}`;
      if (admitted === "environment") return undefined;
      return portShareEnded({
        viewer: viewer?.active ? viewer : undefined,
        ownerId: environment.ownerId,
        share: shares[at].find((s) => s.port === port)?.share ?? "private",
        publicAllowed: settings.publicPorts,
        port,
        name: environment.name,
      });
    });
  }

  /**
   * Holds a port connection in OpenConnections with what let it in: ended
   * within 2 s once its session's access ends or (a share having let it in)
   * once the share no longer allows it, its end audited with the reason.
   * `allows`: for one the environment let in, whether a role still may.
   */
  hold(
    session: HeldSession | undefined,
    held: HeldPort & { via: PortVia; who: PortOpener; allows: (user: User) => boolean },
    end: (reason: string) => void,
  ): () => void {
    const { environmentId, port, admitted, via, who } = held;
    return this.deps.connections.hold(session, {
      kind: "port",
      allows: held.allows,
      port: { environmentId, port, admitted },
      end: (reason) => {
        this.auditOnce(who, "environment.port-ended", environmentId, port, { via, reason });
        end(reason);
      },
    });
  }

  /** Refuses a stopped environment, as every way to a port does. */
  private running(environment: Environment): void {
    if (environment.state !== "running") {
      throw new CvmError("CONFLICT", `Environment ${environment.name} is ${environment.state}: start it first`);
    }
  }

  /**
   * A connection to the port for someone already let in: the environment
   * must be running; nothing listening says so at once. Counts as use of the
   * environment while open, and is audited.
   */
  async connect(environment: Environment, port: number, who: PortOpener, via: PortVia): Promise<Duplex> {
    this.running(environment);
    const socket = await this.deps.provider.dial(environment, port).catch(nothingListens(environment, port));
    const release = this.deps.activity.hold(environment.id);
    socket.once("close", release);
    this.auditOpen(environment, port, who, via);
    return socket;
  }

  /**
   * Joins a client's TCP socket (`cvm port-forward`'s raw upgrade) with the
   * port: spliced by the provider where it can, so no byte passes through
   * this process, piped otherwise. `answer` tells the client it is connected
   * before any byte flows. Resolves once connected, with a way to end the
   * connection at once (access ending, the server stopping) and when it ended.
   */
  async connectSocket(
    environment: Environment,
    port: number,
    client: Socket,
    answer: () => Promise<void>,
    who: PortOpener,
  ): Promise<SplicedSocket> {
    this.running(environment);
    const { provider, activity } = this.deps;
    if (!provider.spliceSocket) {
      const connection = await this.connect(environment, port, who, "forward");
      await answer();
      client.pipe(connection);
      connection.pipe(client);
      const end = () => {
        client.destroy();
        connection.destroy();
      };
      client.on("error", end);
      connection.on("error", end);
      connection.on("close", end);
      client.on("close", end);
      return { finished: new Promise((resolve) => client.once("close", () => resolve())), end };
    }
    const spliced = await provider
      .spliceSocket(environment, port, client, answer)
      .catch(nothingListens(environment, port));
    const release = activity.hold(environment.id);
    this.auditOpen(environment, port, who, "forward");
    spliced.finished.then(() => {
      release();
      client.destroy();
    });
    return spliced;
  }

  private auditOpen(environment: Environment, port: number, who: PortOpener, via: PortVia) {
    this.auditOnce(who, "environment.port-open", environment.id, port, { via });
  }

  /** One entry per viewer, port, action and what it says within auditEveryMs. */
  private auditOnce(
    who: PortOpener,
    action: "environment.port-open" | "environment.port-ended",
    environmentId: string,
    port: number,
    after: Record<string, string>,
  ) {
    const key = `${who.actor?.id ?? who.address}|${environmentId}|${port}|${action}|${Object.values(after).join("|")}`;
    const now = Date.now();
    if (now - (this.audited.get(key) ?? 0) < auditEveryMs) return;
    this.audited.set(key, now);
    for (const [k, at] of this.audited) if (now - at > auditEveryMs) this.audited.delete(k);
    const actor: Actor = who.actor ?? {
      id: "anonymous",
      email: `anonymous (${who.address ?? "unknown"})`,
      role: "member",
    };
    this.deps.audit
      .record(actor, action, `environment/${environmentId}/ports/${port}`, null, after)
      .catch((error) => this.deps.logger.warn({ err: error, action }, "auditing a port connection"));
  }
}
