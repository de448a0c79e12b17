/**
 * An environment's namespaces, entered from the node. The docker provider
 * and the CVM supervisor run beside the environment's processes, so they can
 * reach its network and files through a process of its (`/proc/PID/ns`):
 * TCP to the environment's own loopback (a server bound to 127.0.0.1 inside
 * is reachable, unlike through the container's address), a unix socket
 * inside whose connections come out here (SSH agent forwarding), and the
 * ports listening inside. cvm-nsbridge.c does the entering; this module
 * starts it and speaks for it. Nothing runs or is installed inside.
 */

import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import type { Environment } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import { type ListeningPort, parseListeningPorts } from "../core/listening-ports.js";
import type { Provider, SplicedSocket, UnixListener, UnixSocketSpec } from "../core/provider.js";
import { ensureStaticBinary } from "../native/static-binary.js";

const source = fileURLToPath(new URL("./cvm-nsbridge.c", import.meta.url));

/** How long the bridge may take to join the namespace and connect or listen. */
const readyTimeoutMs = 10_000;

const dockerResolver = "127.0.0.11";

/** Exit codes of cvm-nsbridge that mean the port, not the bridge, is the problem. */
const nothingListens = 3;

/** Waits for the bridge's first line on stderr: "ok", or why not (then its exit code says which failure). */
function ready(child: ChildProcess, what: string): Promise<void> {
  const stderr = child.stdio[2] as Readable;
  return new Promise((resolve, reject) => {
    let text = "";
    let settled = false;
    const settle = (error?: CvmError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      settle(new CvmError("UNAVAILABLE", `${what}: no answer within ${readyTimeoutMs / 1000} s`));
    }, readyTimeoutMs);
    // Read to the end, so the bridge never blocks on a full stderr.
    stderr.on("data", (chunk: Buffer) => {
      if (settled) return;
      text += chunk.toString("utf8");
      if (text.startsWith("ok\n")) settle();
    });
    child.once("error", (error) => settle(new CvmError("UNAVAILABLE", `${what}: ${error.message}`, { cause: error })));
    child.once("close", (code) => settle(bridgeError(what, text.trim() || `exited with ${code}`, code)));
  });
}

function bridgeError(what: string, line: string, code: number | null): CvmError {
  if (code === nothingListens) return new CvmError("UNAVAILABLE", line.replace(/^refused: /, ""));
  return new CvmError("UNAVAILABLE", `${what}: ${line}`);
}

/** What a provider reaches inside an environment through its namespaces. */
export type InsideAccess = Required<Pick<Provider, "dial" | "spliceSocket" | "listeningPorts" | "listenUnix">>;

export class NamespaceBridge {
  private binary?: Promise<string>;

  /**
   * A provider's ways inside, given how it finds the node's pid of an
   * environment's process (the docker provider's container, a CVM's init).
   */
  inside(pidOf: (environment: Environment) => Promise<number>): InsideAccess {
    return {
      dial: async (environment, port) => this.dial(await pidOf(environment), port),
      spliceSocket: async (environment, port, client, connected) =>
        this.splice(await pidOf(environment), port, client, connected),
      listeningPorts: async (environment) => this.listeningPorts(await pidOf(environment)),
      listenUnix: async (environment, spec, onConnection) => this.listen(await pidOf(environment), spec, onConnection),
    };
  }

  /** `binDir`: where the bridge is compiled to (root's, on the node). */
  constructor(private readonly binDir: string) {}

  private bridge(): Promise<string> {
    this.binary ??= ensureStaticBinary(source, this.binDir, "cvm-nsbridge").catch((error) => {
      this.binary = undefined;
      throw error;
    });
    return this.binary;
  }

  /**
   * A TCP connection to `port` on the loopback of the network namespace of
   * process `pid`. Ending the writable side half-closes the connection;
   * destroying the stream ends it.
   */
  async dial(pid: number, port: number): Promise<Duplex> {
    const child = spawn(await this.bridge(), ["dial", String(pid), String(port)], { stdio: "pipe" });
    await ready(child, `connecting to port ${port}`);
    const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
    stream.once("close", () => child.kill("SIGKILL"));
    // Errors of the pipes show as the stream's; a bridge that died leaves a stream that ends.
    child.stdin.on("error", () => undefined);
    return stream;
  }

  /**
   * Joins `client`, a TCP socket of this process's, with a new connection to
   * `port` on the loopback of process `pid`, in the kernel: the bridge gets
   * the socket itself as its stdin and stdout and splices, so no byte passes
   * through this process. `connected` runs once the connection inside is
   * made and before any byte flows (to answer the client); nothing listening
   * rejects before it. Resolves with when the relay ends, and a way to end it
   * at once (the bridge holds the socket too: destroying it here is not enough).
   */
  async splice(
    pid: number,
    port: number,
    client: Socket,
    connected: () => Promise<void> | void,
  ): Promise<SplicedSocket> {
    client.pause();
    const child = spawn(await this.bridge(), ["dial", String(pid), String(port), "--hold"], {
      stdio: [client, client, "pipe", "pipe"],
    });
    const finished = new Promise<void>((resolve) => child.once("close", () => resolve()));
    const go = child.stdio[3] as Writable;
    go.on("error", () => undefined);
    try {
      await ready(child, `connecting to port ${port}`);
      await connected();
    } catch (error) {
      child.kill("SIGKILL");
      throw error;
    }
    go.end("g");
    return {
      finished,
      end() {
        child.kill("SIGKILL");
        client.destroy();
      },
    };
  }

  /** Compiles the bridge now (the CLI, as `cvm port-forward` starts); rejects where it cannot be built. */
  async prepare(): Promise<void> {
    await this.bridge();
  }

  /**
   * Joins two TCP sockets of this process through the bridge (`relay`, see
   * cvm-nsbridge.c): `cvm port-forward`'s hop on the laptop (Linux), the
   * laptop's connection `local` with the server's `remote`. Bytes this
   * process already read from `remote` go to `local` first; then the
   * bridge, holding both sockets, relays, and this process lets go of them. `local` must never have been read here
   * (accepted with pauseOnConnect). Rejects, with both sockets untouched,
   * where the bridge cannot be built. Resolves with when the relay ends and
   * a way to end it at once.
   */
  async relay(local: Socket, remote: Socket): Promise<SplicedSocket> {
    const binary = await this.bridge();
    // From here to letting go of `remote`, nothing may yield to the event loop: a read there would be lost.
    const pending: Buffer[] = [];
    for (let chunk = remote.read(); chunk !== null; chunk = remote.read()) pending.push(chunk);
    const child = spawn(binary, ["relay"], { stdio: [local, local, "pipe", "pipe", remote] });
    remote.destroy();
    const finished = new Promise<void>((resolve) => {
      child.once("close", () => resolve());
      child.once("error", () => resolve());
    });
    const go = child.stdio[3] as Writable;
    go.on("error", () => undefined);
    (child.stdio[2] as Readable).resume();
    const end = () => {
      child.kill("SIGKILL");
      local.destroy();
    };
    if (pending.length > 0) {
      const written = await new Promise<boolean>((resolve) =>
        local.write(Buffer.concat(pending), (error) => resolve(!error)),
      );
      if (!written) end();
    }
    local.destroy();
    go.end("g");
    return { finished, end };
  }

  /**
   * A unix socket at `spec.path` in the mount namespace of process `pid`,
   * owned by `spec.uid`:`spec.gid` there; each connection made to it inside
   * is handed to `onConnection` here.
   */
  async listen(pid: number, spec: UnixSocketSpec, onConnection: (socket: Socket) => void): Promise<UnixListener> {
    const directory = await mkdtemp(join(tmpdir(), "cvm-ns-"));
    const hostSocket = join(directory, "s");
    const server = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(hostSocket, () => resolve());
    });
    const cleanup = async () => {
      await new Promise((resolve) => server.close(resolve));
      await rm(directory, { recursive: true, force: true });
    };
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(
        await this.bridge(),
        ["listen", String(pid), spec.path, String(spec.uid), String(spec.gid), hostSocket],
        { stdio: "pipe" },
      );
      await ready(child, `making ${spec.path} inside the environment`);
    } catch (error) {
      await cleanup();
      throw error;
    }
    child.stdout.resume();
    child.stdin.on("error", () => undefined);
    const exited = new Promise((resolve) => child.once("exit", resolve));
    return {
      async close() {
        // The bridge removes the socket inside when its stdin ends.
        child.stdin.end();
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
        await cleanup();
      },
    };
  }

  /**
   * The TCP ports listening in the network namespace of process `pid`, but
   * the engine's own: Docker's resolver on a user-defined network listens at
   * 127.0.0.11 in every container.
   */
  async listeningPorts(pid: number): Promise<ListeningPort[]> {
    const tables = await Promise.all(
      ["tcp", "tcp6"].map((table) => readFile(`/proc/${pid}/net/${table}`, "utf8").catch(() => "")),
    );
    return parseListeningPorts(tables.join("\n"))
      .map((p) => ({ ...p, addresses: p.addresses.filter((a) => a !== dockerResolver) }))
      .filter((p) => p.addresses.length > 0);
  }
}
