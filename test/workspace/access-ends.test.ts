/**
 * SSH and ports end when access ends (issue 11's promise, for issue 12's
 * ways in), on a real server with the docker provider: an `ssh NAME.cvm`
 * session running a command that keeps printing, a `cvm port-forward`
 * connection and a streaming response opened through the server at
 * /@owner/NAME/ports/PORT/ are each cut within 2 s of the token they were
 * opened with being revoked, and print nothing after. Then a port's share
 * is asked again while its WebSockets stay open: made private, or public
 * sharing forbidden by an admin, here or straight in the store as another
 * replica would, the viewers it no longer lets in (anonymous ones too) are
 * told so with close code 1008 within 2 s, the owner's own connections
 * stay, and the audit says whose ended and why.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import type { Environment } from "../../src/core/environment.js";
import { ownerHandle } from "../../src/core/ports.js";
import { cvmBin, ok, type Person, startWorkspaceServer, type WorkspaceServer } from "./harness.js";

const image = process.env.CVM_TEST_IMAGE_SYSTEMD;
const skip = !image && "CVM_TEST_IMAGE_SYSTEMD is not set: run through `npm test -- FILE`";
/** The promise of issue 11: every long-lived connection ends within this of access ending. */
const withinMs = 2_000;
const tickPort = 9100;
const wsTickPort = 9200;

/** A server inside that answers every connection with an HTTP header, then "tick" every 100 ms, forever. */
const ticker = `nohup perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"127.0.0.1",LocalPort=>${tickPort},Listen=>20,ReuseAddr=>1) or die; $SIG{CHLD}="IGNORE"; while($c=$s->accept){ next if fork; $c->autoflush(1); print $c "HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nConnection: close\\r\\n\\r\\n"; while(1){ print $c "tick\\n" or exit 0; select(undef,undef,undef,0.1) } }' >/dev/null 2>&1 </dev/null &`;

/** A WebSocket server inside that sends a text frame "tick" every 100 ms, forever, to every client. */
const wsTicker = String.raw`
use IO::Socket::INET; use Digest::SHA qw(sha1); use MIME::Base64;
my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => ${wsTickPort}, Listen => 20, ReuseAddr => 1) or die "$!";
$SIG{CHLD} = "IGNORE"; $SIG{PIPE} = "IGNORE";
while (my $c = $s->accept) {
  next if fork;
  $c->autoflush(1);
  my %h; my $first = <$c>;
  while (my $l = <$c>) { last if $l =~ /^\r?$/; my ($k, $v) = $l =~ /^([^:]+):\s*(.*?)\r?$/; $h{lc $k} = $v; }
  my $accept = encode_base64(sha1($h{"sec-websocket-key"} . "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"), "");
  print $c "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n\r\n";
  while (1) { print $c chr(0x81) . chr(4) . "tick" or exit 0; select(undef, undef, undef, 0.1); }
}
`;

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
  /** A WebSocket to the ticking app, through /@owner/NAME/ports/PORT/ unless `url` says where; ticking. */
  async function tickingSocket(headers: Record<string, string>, name: string, url?: string) {
    const portUrl = `${workspace.server.url.replace("http", "ws")}/@${ownerHandle(alice.client.user.email)}/${environment.name}/ports/${wsTickPort}/`;
    const socket = new WebSocket(url ?? portUrl, { headers });
    socket.on("error", () => undefined);
    const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
      socket.once("close", (code, reason) => resolve({ code, reason: reason.toString(), at: performance.now() })),
    );
    const ticks = counting((listener) => socket.on("message", (data) => listener(data as Buffer)), closed);
    await ticking(ticks, name);
    return { socket, closed, ticks };
  }

  type Ticker = Awaited<ReturnType<typeof tickingSocket>>;

  /** `change` made, each of `cut` ends within 2 s with close code 1008 and `reason`; each of `kept` keeps ticking. */
  async function shareChange(
    change: () => Promise<unknown>,
    cut: Record<string, Ticker>,
    kept: Record<string, Ticker>,
    reason: RegExp,
  ) {
    const started = performance.now();
    await change();
    for (const [name, ticker] of Object.entries(cut)) {
      const closed = await Promise.race([
        ticker.closed,
        new Promise<undefined>((resolve) => setTimeout(resolve, withinMs + 3_000)),
      ]);
      assert.ok(closed, `${name} is still open ${withinMs + 3_000} ms after the change`);
      const ms = closed.at - started;
      assert.ok(ms <= withinMs, `${name} ended ${ms.toFixed(0)} ms after the change`);
      assert.equal(closed.code, 1008, `${name}'s close code`);
      assert.match(closed.reason, reason, `${name} is told why`);
      figures.push(`${name} ended ${ms.toFixed(0)} ms after the change: ${closed.code} ${closed.reason}`);
    }
    for (const [name, ticker] of Object.entries(kept)) {
      const before = ticker.ticks.ticks();
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(ticker.ticks.ticks() > before, `${name} still ticks after the change`);
    }
  }

  describe("a port's share, asked again while its WebSockets stay open", () => {
    const bearerOf = (person: Person) => ({ authorization: `Bearer ${person.client.token}` });

    before(async () => {
      await ok(cvmBin, ["ssh", "cut", "--", "sh", "-c", "cat > /tmp/ws-ticker.pl"], {
        env: alice.env,
        input: wsTicker,
      });
      await ok(cvmBin, ["ssh", "cut", "--", "sh", "-c", "nohup perl /tmp/ws-ticker.pl >/dev/null 2>&1 </dev/null &"], {
        env: alice.env,
      });
      for (let i = 0; i < 100; i++) {
        const { items } = await alice.client.ports("cut");
        if (items.some((p) => p.port === wsTickPort && p.listening)) return;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.fail(`nothing listens on ${wsTickPort} in cut`);
    });

    test("public made private: an anonymous viewer's and a signed-in member's WebSockets end, the owner's stay", async () => {
      await alice.client.setPortShare("cut", wsTickPort, { share: "public" });
      const anonymous = await tickingSocket({}, "an anonymous viewer's WebSocket");
      const member = await tickingSocket(bearerOf(workspace.bob), "bob's WebSocket");
      const owner = await tickingSocket(bearerOf(alice), "alice's own WebSocket");
      const forward = spawn(cvmBin, ["port-forward", "cut", `0:${wsTickPort}`], {
        env: { ...process.env, ...alice.env },
        stdio: ["ignore", "pipe", "inherit"],
      });
      children.push(forward);
      const local = await new Promise<number>((resolve) =>
        forward.stdout.on("data", (chunk: Buffer) => {
          const match = /127\.0\.0\.1:(\d+)/.exec(chunk.toString());
          if (match) resolve(Number(match[1]));
        }),
      );
      const forwarded = await tickingSocket({}, "alice's cvm port-forward connection", `ws://127.0.0.1:${local}/`);
      await shareChange(
        () => alice.client.setPortShare("cut", wsTickPort, { share: "private" }),
        { "an anonymous viewer's WebSocket": anonymous, "bob's WebSocket": member },
        { "alice's own WebSocket": owner, "alice's cvm port-forward connection": forwarded },
        /The owner made port 9200 of cut private/,
      );
      forwarded.socket.close();
      owner.socket.close();
    });

    test("shared with signed-in users, made private straight in the store (another replica): the member's WebSocket ends", async () => {
      await alice.client.setPortShare("cut", wsTickPort, { share: "authenticated" });
      const member = await tickingSocket(bearerOf(workspace.bob), "bob's WebSocket (another replica's change)");
      const owner = await tickingSocket(bearerOf(alice), "alice's own WebSocket");
      await shareChange(
        () =>
          workspace.server.store.workspace.setPortShare(
            environment.id,
            wsTickPort,
            "private",
            new Date().toISOString(),
          ),
        { "bob's WebSocket (another replica's change)": member },
        { "alice's own WebSocket": owner },
        /private/,
      );
      owner.socket.close();
    });

    test("an admin forbids public sharing: anonymous viewers of a public port end, signed-in ones stay", async () => {
      await alice.client.setPortShare("cut", wsTickPort, { share: "public" });
      const anonymous = await tickingSocket({}, "an anonymous viewer's WebSocket (public forbidden)");
      const member = await tickingSocket(bearerOf(workspace.bob), "bob's WebSocket");
      try {
        await shareChange(
          () => workspace.admin.client.updateInfrastructure({ publicPorts: false }),
          { "an anonymous viewer's WebSocket (public forbidden)": anonymous },
          { "bob's WebSocket": member },
          /Public sharing of ports was turned off/,
        );
      } finally {
        await workspace.admin.client.updateInfrastructure({ publicPorts: true });
        member.socket.close();
      }
    });

    test("the environment stopping ends even the owner's WebSocket, saying why", async () => {
      const owner = await tickingSocket(bearerOf(alice), "alice's own WebSocket (environment stopping)");
      await shareChange(
        () => alice.client.stopEnvironment(environment.id),
        { "alice's own WebSocket (environment stopping)": owner },
        {},
        /^Environment cut is (stopping|stopped)$/,
      );
    });

    test("the audit says whose connections a share ended, and why", async () => {
      const { items } = await workspace.admin.client.audit({ action: "environment.port-ended" });
      const seen = items.map((e) => `${e.actorEmail}: ${(e.after as { reason: string }).reason}`);
      assert.ok(
        seen.some((s) => /^anonymous \(.+\): The owner made port 9200 of cut private$/.test(s)),
        seen.join("\n"),
      );
      assert.ok(seen.includes("bob@example.com: The owner made port 9200 of cut private"), seen.join("\n"));
      assert.ok(
        seen.some((s) => /^anonymous \(.+\): Public sharing of ports was turned off/.test(s)),
        seen.join("\n"),
      );
      assert.ok(!seen.some((s) => s.startsWith("alice@example.com: The owner")), seen.join("\n"));
    });
  });
});
