/**
 * `cvm port-forward NAME [LOCAL:]REMOTE ...`: TCP from this machine to ports
 * inside an environment, through the server. It listens on loopback only
 * unless told otherwise; each connection accepted becomes one WebSocket to
 * the server, which connects to the port on the environment's own loopback.
 */

import { createServer, type Server, type Socket } from "node:net";
import type { Command } from "commander";
import { rawUpgrade } from "../api/contract.js";
import { CvmError } from "../core/errors.js";
import { portProblem } from "../core/ports.js";
import { startedIfStopped } from "./auto-start.js";
import { configuredClient } from "./config.js";
import { openRawStream } from "./websocket.js";

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

function relay(local: Socket, ref: string, remote: number): void {
  const client = configuredClient();
  local.pause();
  startedIfStopped(client, ref, () => openRawStream(client, client.portConnectUrl(ref, remote), rawUpgrade)).then(
    (upstream) => {
      local.pipe(upstream);
      upstream.pipe(local);
      const end = () => {
        local.destroy();
        upstream.destroy();
      };
      local.on("error", end);
      upstream.on("error", end);
      local.on("close", () => upstream.destroy());
      upstream.on("close", () => local.destroy());
      local.resume();
    },
    (error: Error) => {
      process.stderr.write(`cvm: port ${remote}: ${error.message}\n`);
      local.destroy();
    },
  );
}

async function portForward(ref: string, specs: string[], options: { address: string }): Promise<void> {
  const forwards = specs.map(parseForward);
  configuredClient();
  const servers: Server[] = [];
  for (const { local, remote } of forwards) {
    // Large buffers on the laptop's side: a bulk transfer pauses and resumes its reads less often.
    const server = createServer({ highWaterMark: 1 << 20 }, (socket) => relay(socket, ref, remote));
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
