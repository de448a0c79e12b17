/**
 * The exec dial's relay and its stream, with the environment's exec stood in
 * for by a local process (a fake of the Pod's exec: the same command, run on
 * this machine, so the relay's Perl is the real one): bytes both ways with a
 * half-close, a large transfer intact, and a port nothing listens on refused
 * at once, saying so.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:net";
import { after, before, test } from "node:test";
import type { Environment } from "../core/environment.js";
import type { ExecSession, Provider } from "../core/provider.js";
import { dialByExec } from "./exec-dial.js";

/** Fake exec: runs the command here, as the Pod's exec would run it there. */
const localExec: Provider["exec"] = async (_environment, options) => {
  const child = spawn(options.command[0], options.command.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  const listeners: ((stream: "stdout" | "stderr", data: Uint8Array) => void)[] = [];
  child.stdout.on("data", (data: Buffer) => {
    for (const listener of listeners) listener("stdout", data);
  });
  child.stderr.on("data", (data: Buffer) => {
    for (const listener of listeners) listener("stderr", data);
  });
  child.stdin.on("error", () => undefined);
  const session: ExecSession = {
    write: (data) => child.stdin.write(data),
    end: () => child.stdin.end(),
    resize: async () => undefined,
    onOutput: (listener) => listeners.push(listener),
    exited: new Promise((resolve) => child.once("close", (code) => resolve(code ?? 1))),
    kill: () => child.kill("SIGKILL"),
  };
  return session;
};

const environment = { id: "env_test", name: "dev" } as Environment;
let echo: Server;
let port: number;

before(async () => {
  // Echoes what it gets, and ends its side when the client ends theirs.
  echo = createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  port = (echo.address() as { port: number }).port;
});
after(() => echo.close());

test("bytes go both ways through the relay; ending the writing side half-closes, and the echo ends", async () => {
  const stream = await dialByExec(localExec, environment, port);
  const payload = randomBytes(8 * 1024 * 1024);
  const received: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => received.push(chunk));
  const ended = new Promise((resolve) => stream.once("end", resolve));
  stream.end(payload);
  await ended;
  const back = Buffer.concat(received);
  assert.equal(back.length, payload.length);
  assert.equal(createHash("sha256").update(back).digest("hex"), createHash("sha256").update(payload).digest("hex"));
});

test("a port nothing listens on is refused at once, naming the port", async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const free = (closed.address() as { port: number }).port;
  await new Promise((resolve) => closed.close(resolve));
  await assert.rejects(dialByExec(localExec, environment, free), {
    code: "UNAVAILABLE",
    message: new RegExp(`nothing listens on port ${free}`),
  });
});
