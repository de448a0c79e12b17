import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { text } from "node:stream/consumers";
import { after, before, test } from "node:test";
import { NamespaceBridge } from "./index.js";

// The bridge entering this test's own namespaces (joining one's own is allowed to root):
// the mechanics of dial, listen and the port table; test/docker/ssh.test.ts crosses into containers.
const skip = process.getuid?.() !== 0 && "setns needs root (run as root, as the server does)";
let dir: string;
let bridge: NamespaceBridge;
let echo: Server;
let echoPort: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "cvm-nsbridge-test-"));
  bridge = new NamespaceBridge(join(dir, "bin"));
  echo = createServer((socket) => {
    socket.on("data", (data) => socket.write(data.toString().toUpperCase()));
    socket.on("end", () => socket.end("bye"));
  });
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  echoPort = (echo.address() as { port: number }).port;
});

after(async () => {
  echo?.close();
  await rm(dir, { recursive: true, force: true });
});

test("dial reaches a server on the namespace's loopback; each side's end half-closes", { skip }, async () => {
  const stream = await bridge.dial(process.pid, echoPort);
  const answer = text(stream);
  stream.write("hello");
  await new Promise((resolve) => setTimeout(resolve, 100));
  stream.end();
  assert.equal(await answer, "HELLObye");
});

test("dial to a port nothing listens on says so at once", { skip }, async () => {
  const unused = createServer();
  await new Promise<void>((resolve) => unused.listen(0, "127.0.0.1", resolve));
  const port = (unused.address() as { port: number }).port;
  await new Promise((resolve) => unused.close(resolve));
  const started = Date.now();
  await assert.rejects(bridge.dial(process.pid, port), {
    code: "UNAVAILABLE",
    message: `nothing listens on port ${port} inside the environment`,
  });
  assert.ok(Date.now() - started < 5000);
});

test("dial into a process that is gone is refused with the reason", { skip }, async () => {
  await assert.rejects(bridge.dial(2 ** 22 + 1, echoPort), /joining the environment's network namespace/);
});

test("the port table lists the echo server on 127.0.0.1", { skip }, async () => {
  const ports = await bridge.listeningPorts(process.pid);
  assert.deepEqual(
    ports.find((p) => p.port === echoPort),
    { port: echoPort, addresses: ["127.0.0.1"] },
  );
});

test("listen: a socket inside, owned as asked, whose connections come out here; removed on close", {
  skip,
}, async () => {
  const path = join(dir, "agent", "agent.sock");
  const listener = await bridge.listen(process.pid, { path, uid: 4321, gid: 4322 }, (socket) => {
    socket.on("data", (data) => socket.end(`got ${data}`));
  });
  const info = await stat(path);
  assert.deepEqual([info.uid, info.gid, info.mode & 0o777], [4321, 4322, 0o600]);
  const directory = await stat(join(dir, "agent"));
  assert.equal(directory.mode & 0o777, 0o700);
  const client = connect(path);
  client.write("ping");
  assert.equal(await text(client), "got ping");
  await listener.close();
  await assert.rejects(stat(path), { code: "ENOENT" });
});

test("relay joins two sockets of this process in the kernel; what was read before it goes first", async () => {
  // The far side greets first (as SSH or SMTP do), so its greeting is read here before the bridge takes over.
  const far = createServer((socket) => {
    socket.write("greeting\n");
    socket.on("data", (data) => socket.write(data.toString().toUpperCase()));
    socket.on("end", () => socket.end("bye"));
  });
  await new Promise<void>((resolve) => far.listen(0, "127.0.0.1", resolve));
  let answer: Promise<string> | undefined;
  const relayed = new Promise<void>((resolve, reject) => {
    const near = createServer({ pauseOnConnect: true }, async (local) => {
      near.close();
      const remote = connect((far.address() as { port: number }).port, "127.0.0.1");
      await new Promise((ready) => remote.once("connect", ready));
      await new Promise((wait) => setTimeout(wait, 100));
      const spliced = await bridge.relay(local, remote).catch(reject);
      await spliced?.finished;
      resolve();
    });
    near.listen(0, "127.0.0.1", () => {
      const client = connect((near.address() as { port: number }).port, "127.0.0.1");
      answer = text(client);
      client.write("hello");
      setTimeout(() => client.end(), 300);
    });
  });
  await relayed;
  assert.equal(await answer, "greeting\nHELLObye");
  far.close();
});
