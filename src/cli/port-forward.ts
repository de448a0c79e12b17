/**
 * `cvm port-forward NAME [LOCAL:]REMOTE ...`: TCP from this machine to ports
 * inside an environment, through the server. It listens on loopback only
 * unless told otherwise; each connection accepted becomes one raw upgraded
 * connection to the server (`Upgrade: cvm-tcp`), which splices it to the
 * port on the environment's own loopback. On Linux the hop here is relayed
 * by cvm's bridge (src/netns/cvm-nsbridge.c, compiled at first use where
 * gcc can, else prebuilt in /usr/libexec/cvm), a small C process that takes
 * both sockets: copying every byte through Node cost more CPU than the rest
 * of the path together. Elsewhere (macOS), or without the bridge, Node
 * copies, reading 1 MiB a call (CVM_PORT_FORWARD_BRIDGE=0 asks for that
 * anywhere).
 */

import { createServer, type Server, type Socket } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { rawUpgrade } from "../api/contract.js";
import { CvmError } from "../core/errors.js";
import { portProblem } from "../core/ports.js";
import { startedIfStopped } from "./auto-start.js";
import { configuredClient } from "./config.js";
import { openRawStream, openRawStreamInto } from "./websocket.js";

export interface Forward {
  local: number;
  remote: number;
}

/** `8080` (the same port here) or `9000:8080` (9000 here to 8080 inside); 0 here picks a free port. */
export function parseForward(spec: string): Forward {
  const match = /^(?:(\d{1,5}):)?(\d{1,5})$/.exec(spec);
  const remote = Number(match?.[2]);
  const local = match?.[1] === undefined ? remote : Number(match[1]);
  const problem = !match
    ? "must be PORT or LOCAL:REMOTE"
    : (portProblem(remote) ?? (local === 0 ? undefined : portProblem(local)));
  if (problem) {
    throw new CvmError("BAD_REQUEST", `port ${spec} ${problem}`, { validations: [{ field: "port", detail: problem }] });
  }
  return { local, remote };
}

/**
 * What joins a local connection with the server's, given how to open the
 * server's (`into`: where what it sends is written, on the Node path).
 */
type Joiner = (local: Socket, open: (into?: Socket) => Promise<Socket>) => Promise<void>;

/** Node: the server's bytes written into the local connection as read (1 MiB a read), the local ones piped back. */
const copyInNode: Joiner = async (local, open) => {
  const upstream = await open(local);
  local.pipe(upstream);
  const cut = () => {
    local.destroy();
    upstream.destroy();
  };
  local.on("error", cut);
  upstream.on("error", cut);
  local.on("close", () => upstream.destroy());
  // What was written to the local connection still goes out; then it ends.
  upstream.on("close", () => local.end());
  local.resume();
};

/** Where this machine keeps the bridge it compiled. */
function bridgeDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "cvm", "bin");
}

/**
 * The bridge's relay on Linux once it is built (loaded on demand: only this
 * command needs it), else Node; never fails.
 */
async function joiner(): Promise<Joiner> {
  if (process.platform !== "linux" || process.env.CVM_PORT_FORWARD_BRIDGE === "0") return copyInNode;
  try {
    const { NamespaceBridge } = await import("../netns/index.js");
    const bridge = new NamespaceBridge(bridgeDir());
    await bridge.prepare();
    // The bridge ends with this process (it asks the kernel to), as Node's own copy would.
    return async (local, open) => {
      await bridge.relay(local, await open());
    };
  } catch {
    return copyInNode;
  }
}

function relay(local: Socket, ref: string, remote: number, join: Promise<Joiner>): void {
  const client = configuredClient();
  const url = client.portConnectUrl(ref, remote);
  const open = (into?: Socket) =>
    startedIfStopped(client, ref, () =>
      into ? openRawStreamInto(client, url, rawUpgrade, into) : openRawStream(client, url, rawUpgrade),
    );
  join
    .then((joined) => joined(local, open))
    .catch((error: Error) => {
      process.stderr.write(`cvm: port ${remote}: ${error.message}\n`);
      local.destroy();
    });
}

async function portForward(ref: string, specs: string[], options: { address: string }): Promise<void> {
  const forwards = specs.map(parseForward);
  configuredClient();
  const join = joiner();
  const servers: Server[] = [];
  for (const { local, remote } of forwards) {
    // Never read here before joined (the bridge takes the socket as it is); large buffers for Node's pipe.
    const server = createServer({ highWaterMark: 1 << 20, pauseOnConnect: true }, (socket) =>
      relay(socket, ref, remote, join),
    );
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) =>
        reject(
          new CvmError("CONFLICT", `cannot listen on ${options.address}:${local}: ${error.code ?? error.message}`),
        ),
      );
      server.listen(local, options.address, () => resolve());
    });
    const bound = (server.address() as { port: number }).port;
    process.stdout.write(`Forwarding ${options.address}:${bound} -> ${ref}:${remote}\n`);
    servers.push(server);
  }
  await new Promise<void>((resolve) => {
    const stop = () => {
      for (const server of servers) server.close();
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

export function register(program: Command): void {
  program
    .command("port-forward")
    .description(
      "forward TCP ports on this machine to ports inside an environment: cvm port-forward NAME [LOCAL:]REMOTE ...",
    )
    .argument("<name>")
    .argument("<ports...>", "PORT, or LOCAL:REMOTE")
    .option("--address <address>", "the local address to listen on (default loopback only)", "127.0.0.1")
    .action((ref: string, ports: string[], options: { address: string }) => portForward(ref, ports, options));
}
