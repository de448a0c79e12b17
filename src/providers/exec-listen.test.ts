/**
 * The exec-carried unix socket (exec-listen.ts) with its real Perl relay:
 * the relay runs as a local process standing in for the Pod's exec (same
 * stdin, stdout, stderr and exit code, no API server), and real clients
 * connect to the socket it makes. test/k8s/real-node.test.ts runs it
 * through a Pod's exec with `ssh -A`.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { text } from "node:stream/consumers";
import { after, before, test } from "node:test";
import type { ExecSession } from "../core/provider.js";
import { encodeSocketFrame, listenScript, relayListener, SocketFrameDecoder } from "./exec-listen.js";

/** The relay as a local process, shaped as the provider's ExecSession. */
function localRelay(path: string, uid: number, gid: number): { session: ExecSession; pid: () => number } {
  const child = spawn("perl", ["-e", listenScript, path, String(uid), String(gid)], { stdio: "pipe" });
  child.stdin.on("error", () => undefined);
  const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 255)));
  return {
    pid: () => child.pid ?? 0,
    session: {
      write: (data) => child.stdin.write(data),
      end: () => child.stdin.end(),
      resize: async () => undefined,
      onOutput: (listener) => {
        child.stdout.on("data", (data: Buffer) => listener("stdout", data));
        child.stderr.on("data", (data: Buffer) => listener("stderr", data));
      },
      exited,
      kill: () => child.kill("SIGKILL"),
    },
  };
}

/** Echoes in upper case, and answers the client's end with "bye" and its own. */
function upperEcho(connection: Duplex): void {
  connection.on("data", (data: Buffer) => connection.write(data.toString().toUpperCase()));
  connection.on("end", () => connection.end("bye"));
}

function connected(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path, () => resolve(socket));
    socket.once("error", reject);
  });
}

const owner = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : { uid: process.getuid?.() ?? 0, gid: 0 };
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "cvm-exec-listen-test-"));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("the socket is the account's in a private directory, carries connections both ways, and is gone after close", async () => {
  const path = join(dir, "one", "agent.sock");
  const { session } = localRelay(path, owner.uid, owner.gid);
  const accepted: Duplex[] = [];
  const listener = await relayListener(session, path, (connection) => {
    accepted.push(connection);
    upperEcho(connection);
  });
  const [directory, socket] = await Promise.all([stat(join(dir, "one")), stat(path)]);
  assert.equal(directory.mode & 0o777, 0o700);
  assert.equal(socket.mode & 0o777, 0o600);
  assert.ok(socket.isSocket());
  assert.equal(directory.uid, owner.uid);
  assert.equal(socket.uid, owner.uid);

  // Two clients at once, each answered on its own connection; a half-close is passed on both ways.
  const [a, b] = await Promise.all([connected(path), connected(path)]);
  const answers = Promise.all([text(a), text(b)]);
  a.write("first ");
  b.write("second ");
  a.end("a");
  b.end("b");
  assert.deepEqual(await answers, ["FIRST Abye", "SECOND Bbye"]);
  assert.equal(accepted.length, 2);

  // A megabyte through, in chunks the frames cut anywhere.
  const big = Buffer.alloc(1024 * 1024, "x");
  const c = await connected(path);
  const answer = text(c);
  c.end(big);
  assert.equal((await answer).length, big.length + 3);

  await listener.close();
  assert.equal(await session.exited, 0);
  assert.equal(existsSync(path), false, "the socket is removed");
  assert.equal(existsSync(join(dir, "one")), false, "its directory is removed");
});

test("a relay that dies ends every connection it carried at once", async () => {
  const path = join(dir, "two", "agent.sock");
  const { session } = localRelay(path, owner.uid, owner.gid);
  const accepted: Duplex[] = [];
  const listener = await relayListener(session, path, (connection) => accepted.push(connection));
  const clients = await Promise.all([connected(path), connected(path)]);
  while (accepted.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  const closed = accepted.map((connection) => new Promise((resolve) => connection.once("close", resolve)));
  session.kill();
  await Promise.all(closed);
  for (const client of clients) client.destroy();
  await listener.close();
});

test("the client's close inside reaches the server's side, and the server's close reaches the client", async () => {
  const path = join(dir, "three", "agent.sock");
  const { session } = localRelay(path, owner.uid, owner.gid);
  const accepted: Duplex[] = [];
  const listener = await relayListener(session, path, (connection) => accepted.push(connection));
  const client = await connected(path);
  while (accepted.length < 1) await new Promise((resolve) => setTimeout(resolve, 10));
  const ended = new Promise((resolve) => accepted[0].once("end", resolve));
  accepted[0].resume();
  client.end();
  await ended;
  const second = await connected(path);
  while (accepted.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  const clientClosed = new Promise((resolve) => second.once("close", resolve));
  second.resume();
  accepted[1].destroy();
  await clientClosed;
  await listener.close();
});

test("a socket path whose directory exists already is refused with the reason, and nothing is left running", async () => {
  const path = join(dir, "agent.sock");
  const { session } = localRelay(path, owner.uid, owner.gid);
  await assert.rejects(
    relayListener(session, path, () => undefined),
    (error: Error) => {
      assert.match(error.message, /making .* inside: making .*: File exists/);
      return true;
    },
  );
  assert.equal(await session.exited, 4);
});

test("frames cut anywhere reassemble; bytes that are not frames are refused", () => {
  const stream = Buffer.concat([
    encodeSocketFrame("o", 7),
    encodeSocketFrame("d", 7, Buffer.from("hello")),
    encodeSocketFrame("e", 7),
    encodeSocketFrame("c", 300_000),
  ]);
  const decoder = new SocketFrameDecoder();
  const frames = [...stream].flatMap((byte) => decoder.push(Buffer.from([byte])));
  assert.deepEqual(
    frames.map((f) => [f.type, f.id, Buffer.from(f.data).toString()]),
    [
      ["o", 7, ""],
      ["d", 7, "hello"],
      ["e", 7, ""],
      ["c", 300_000, ""],
    ],
  );
  assert.throws(() => new SocketFrameDecoder().push(Buffer.from("garbage!!")), /not a socket frame/);
});

test("a fake exec whose output is not the relay's frames ends its connections and the exec", async () => {
  const outputs: ((stream: "stdout" | "stderr", data: Uint8Array) => void)[] = [];
  let killed = false;
  let exit: (code: number) => void = () => undefined;
  const fake: ExecSession = {
    write: () => undefined,
    end: () => undefined,
    resize: async () => undefined,
    onOutput: (listener) => outputs.push(listener),
    exited: new Promise((resolve) => {
      exit = resolve;
    }),
    kill: () => {
      killed = true;
      exit(137);
    },
  };
  const accepted: Duplex[] = [];
  const listening = relayListener(fake, "/fake/agent.sock", (connection) => accepted.push(connection));
  for (const output of outputs) output("stderr", Buffer.from("ok\n"));
  const listener = await listening;
  for (const output of outputs) output("stdout", encodeSocketFrame("o", 1));
  assert.equal(accepted.length, 1);
  // No error listener: a connection not yet bridged must not throw when its relay goes wrong.
  const closed = new Promise((resolve) => accepted[0].once("close", resolve));
  for (const output of outputs) output("stdout", Buffer.from("not a frame at all"));
  await closed;
  assert.ok(killed);
  await listener.close();
});
