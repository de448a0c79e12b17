/**
 * SSH and ports end when access ends (issue 11's promise, for issue 12's
 * ways in), on a real server with the docker provider: an `ssh NAME.cvm`
 * session running a command that keeps printing, a `cvm port-forward`
 * connection and a streaming response opened through the server at
 * /@owner/NAME/ports/PORT/ are each cut within 2 s of the token they were
 * opened with being revoked, and print nothing after.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Environment } from "../../src/core/environment.js";
import { ownerHandle } from "../../src/core/ports.js";
import { cvmBin, ok, type Person, startWorkspaceServer, type WorkspaceServer } from "./harness.js";

const image = process.env.CVM_TEST_IMAGE_SYSTEMD;
const skip = !image && "CVM_TEST_IMAGE_SYSTEMD is not set: run through `npm test -- FILE`";
/** The promise of issue 11: every long-lived connection ends within this of access ending. */
const withinMs = 2_000;
const tickPort = 9100;

/** A server inside that answers every connection with an HTTP header, then "tick" every 100 ms, forever. */
const ticker = `nohup perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"127.0.0.1",LocalPort=>${tickPort},Listen=>20,ReuseAddr=>1) or die; $SIG{CHLD}="IGNORE"; while($c=$s->accept){ next if fork; $c->autoflush(1); print $c "HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nConnection: close\\r\\n\\r\\n"; while(1){ print $c "tick\\n" or exit 0; select(undef,undef,undef,0.1) } }' >/dev/null 2>&1 </dev/null &`;

/** Something that prints ticks: counts them, and says when it ended. */
interface Ticking {
  ticks(): number;
  ended: Promise<number>;
}

function counting(onData: (listener: (chunk: Buffer) => void) => void, ended: Promise<unknown>): Ticking {
  let ticks = 0;
  onData((chunk) => {
    ticks += (chunk.toString().match(/tick/g) ?? []).length;
  });
  return { ticks: () => ticks, ended: ended.then(() => performance.now()) };
}

async function ticking(what: Ticking, name: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (what.ticks() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(what.ticks() >= 2, `${name} prints its ticks`);
}

/** Revokes the token, then waits for the connection to end within `withinMs`; nothing arrives after. */
async function cutOnRevoke(person: Person, tokenId: string, what: Ticking, name: string): Promise<number> {
  const started = performance.now();
  await person.client.revokeToken(tokenId);
  const ended = await Promise.race([
    what.ended,
    new Promise<number>((resolve) => setTimeout(() => resolve(Number.NaN), withinMs + 3_000)),
  ]);
  assert.ok(!Number.isNaN(ended), `${name} is still open ${withinMs + 3_000} ms after the revocation`);
  const ms = ended - started;
  assert.ok(ms <= withinMs, `${name} ended ${ms.toFixed(0)} ms after the revocation`);
  const ticks = what.ticks();
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(what.ticks(), ticks, `${name}: nothing after the cut`);
  return ms;
}

describe("SSH and ports end when access ends", { skip }, () => {
  let workspace: WorkspaceServer;
  let alice: Person;
  let environment: Environment;
  const children: ChildProcess[] = [];
  const figures: string[] = [];

  /** A token of alice's own for one connection, and her CLI's environment with it. */
  async function freshToken(name: string) {
    const created = await alice.client.createToken({ name });
    return { id: created.token.id, secret: created.secret, env: { ...alice.env, CVM_TOKEN: created.secret } };
  }

  before(async () => {
    workspace = await startWorkspaceServer("access-ends-workspace");
    alice = workspace.alice;
    environment = await workspace.environment(alice, { name: "cut", image: image as string, cvm: false });
    await ok(cvmBin, ["ssh", "cut", "--", "sh", "-c", ticker], { env: alice.env });
    await ok(cvmBin, ["config-ssh"], { env: alice.env });
  });
  after(async () => {
    console.log(figures.join("\n"));
    for (const child of children) child.kill("SIGKILL");
    await workspace?.close();
  });

  test("an ssh NAME.cvm session that keeps printing is cut within 2 s of its token's revocation", async () => {
    const token = await freshToken("ssh");
    const ssh = spawn(
      "ssh",
      [
        "-F",
        join(alice.home, ".ssh", "config"),
        "-o",
        "BatchMode=yes",
        "cut.cvm",
        "while true; do echo tick; sleep 0.1; done",
      ],
      { env: { ...process.env, ...token.env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(ssh);
    const session = counting(
      (listener) => ssh.stdout.on("data", listener),
      new Promise((resolve) => ssh.once("exit", resolve)),
    );
    await ticking(session, "the SSH session");
    figures.push(
      `revocation → ssh session ended: ${(await cutOnRevoke(alice, token.id, session, "the SSH session")).toFixed(0)} ms`,
    );
  });

  test("a cvm port-forward connection is cut within 2 s of its token's revocation", async () => {
    const token = await freshToken("port-forward");
    const local = 20_000 + Math.floor(Math.random() * 10_000);
    const forward = spawn(cvmBin, ["port-forward", "cut", `${local}:${tickPort}`], {
      env: { ...process.env, ...token.env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(forward);
    await new Promise<void>((resolve, reject) => {
      forward.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("Forwarding") && resolve());
      forward.once("exit", (code) => reject(new Error(`cvm port-forward exited with ${code}`)));
    });
    const socket = connect(local, "127.0.0.1");
    socket.on("error", () => undefined);
    const connection = counting(
      (listener) => socket.on("data", listener),
      new Promise((resolve) => socket.once("close", resolve)),
    );
    await ticking(connection, "the forwarded connection");
    figures.push(
      `revocation → port-forward connection ended: ${(await cutOnRevoke(alice, token.id, connection, "the forwarded connection")).toFixed(0)} ms`,
    );
  });

  test("a streaming response through /@owner/NAME/ports/PORT/ is cut within 2 s of its token's revocation", async () => {
    const token = await freshToken("port-proxy");
    const url = new URL(workspace.server.url);
    const handle = ownerHandle(alice.client.user.email);
    const response = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
      const request = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: `/@${handle}/${environment.name}/ports/${tickPort}/`,
          headers: { authorization: `Bearer ${token.secret}` },
        },
        resolve,
      );
      request.on("error", reject);
      request.end();
    });
    assert.equal(response.statusCode, 200);
    response.on("error", () => undefined);
    const stream = counting(
      (listener) => response.on("data", listener),
      new Promise((resolve) => response.once("close", resolve)),
    );
    await ticking(stream, "the streaming response");
    figures.push(
      `revocation → proxied stream ended: ${(await cutOnRevoke(alice, token.id, stream, "the streaming response")).toFixed(0)} ms`,
    );
  });
});
