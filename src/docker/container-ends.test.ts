/**
 * A stop or removal the engine never answers ends with a 503 saying so.
 * The engine here is a fake, named as one: a socket that takes the request
 * and never answers, as Docker 20.10 does for a container whose exit it never
 * hears of; a real dockerd cannot be brought to that on purpose.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import Dockerode from "dockerode";
import { CvmError } from "../core/errors.js";
import { removeContainer, stopContainer } from "./container-ends.js";

let dir: string;
let silentEngine: Server;
const requests: string[] = [];
const sockets = new Set<Socket>();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cvm-silent-engine-"));
  silentEngine = createServer((socket) => {
    sockets.add(socket);
    socket.once("data", (data) => requests.push(data.toString().split("\r\n")[0] ?? ""));
  });
  await new Promise<void>((resolve) => silentEngine.listen(join(dir, "docker.sock"), resolve));
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => silentEngine.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

// Each bounded itself: without the feature the call waits forever.
test("a removal the engine never answers fails in time, naming the container and what to do", {
  timeout: 10_000,
}, async () => {
  const container = new Dockerode({ socketPath: join(dir, "docker.sock") }).getContainer("0123456789abcdef");
  const began = Date.now();
  const error = await removeContainer(container, { volumes: true, timeoutMs: 300 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof CvmError, String(error));
  assert.equal(error.code, "UNAVAILABLE");
  assert.equal(error.message, "The container engine did not remove container 0123456789ab within 0.3 s");
  assert.match(error.detail ?? "", /ask again in a while/);
  assert.ok(Date.now() - began < 5000);
  assert.ok(requests.some((line) => /^DELETE \/containers\/0123456789abcdef\?force=true&v=true/.test(line)));
});

test("a stop the engine never answers fails in time as well", { timeout: 10_000 }, async () => {
  const container = new Dockerode({ socketPath: join(dir, "docker.sock") }).getContainer("fedcba9876543210");
  const error = await stopContainer(container, 0, { timeoutMs: 300 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof CvmError, String(error));
  assert.equal(error.message, "The container engine did not stop container fedcba987654 within 0.3 s");
  assert.ok(requests.some((line) => /^POST \/containers\/fedcba9876543210\/stop\?t=0/.test(line)));
});
