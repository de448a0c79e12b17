/**
 * Ports as a user lives with them, on a real server with the docker
 * provider: the ports listening inside (live), `cvm port-forward` from this
 * machine (loopback only), and each port opened through the server at
 * /@owner/NAME/ports/PORT/ and on its own host under a wildcard host, with
 * streaming responses and WebSockets passed through. Then the share levels,
 * checked on every request, the admin's switch for public sharing, and the
 * audit of who opened what.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect, createServer } from "node:net";
import { networkInterfaces } from "node:os";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import type { Environment } from "../../src/core/environment.js";
import { cvmBin, ok, type Person, run, startWorkspaceServer, type WorkspaceServer } from "./harness.js";

const image = process.env.CVM_TEST_IMAGE_SYSTEMD;
const cvmImage = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
const skip = (!image || !cvmImage) && "run through `npm test`, which builds the test images";

/**
 * The app inside: a small HTTP server in Perl (every Debian image has it).
 * / says hello; /headers echoes the request's headers; /stream sends one line,
 * waits a second, sends another; /big sends N bytes; /ws answers a WebSocket
 * handshake and echoes one text message.
 */
const app = String.raw`
use IO::Socket::INET; use Digest::SHA qw(sha1); use MIME::Base64;
my ($port, $bind) = @ARGV;
my $s = IO::Socket::INET->new(LocalAddr => $bind, LocalPort => $port, Listen => 20, ReuseAddr => 1) or die "$!";
$SIG{CHLD} = "IGNORE";
while (my $c = $s->accept) {
  next if fork;
  $c->autoflush(1);
  my $first = <$c>; my ($path) = $first =~ m{^\S+ (\S+)}; my %h; my $raw = "";
  while (my $l = <$c>) { last if $l =~ /^\r?$/; $raw .= $l; my ($k, $v) = $l =~ /^([^:]+):\s*(.*?)\r?$/; $h{lc $k} = $v; }
  if ($path eq "/ws" && lc($h{upgrade} // "") eq "websocket") {
    my $accept = encode_base64(sha1($h{"sec-websocket-key"} . "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"), "");
    print $c "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n\r\n";
    read($c, my $hdr, 2); my $len = ord(substr($hdr, 1, 1)) & 127; read($c, my $mask, 4); read($c, my $data, $len);
    my $text = join "", map { chr(ord(substr($data, $_, 1)) ^ ord(substr($mask, $_ % 4, 1))) } 0 .. $len - 1;
    my $reply = "echo: $text"; print $c chr(0x81) . chr(length $reply) . $reply;
    sleep 1; exit 0;
  }
  if ($path eq "/stream") { print $c "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nfirst\n"; sleep 2; print $c "second\n"; exit 0; }
  if ($path =~ m{^/big/(\d+)}) { my $n = $1; print $c "HTTP/1.1 200 OK\r\nContent-Length: $n\r\nConnection: close\r\n\r\n"; my $chunk = join "", map { chr($_ % 251) } 0 .. 65535; while ($n > 0) { my $k = $n < 65536 ? $n : 65536; print $c substr($chunk, 0, $k); $n -= $k; } exit 0; }
  my $body = $path eq "/headers" ? $raw : "hello from $port at $path\n";
  print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " . length($body) . "\r\nSet-Cookie: cvm_session=from-the-app; Path=/\r\nSet-Cookie: app=1; Path=/\r\nConnection: close\r\n\r\n$body";
  exit 0;
}
`;

let workspace: WorkspaceServer;
let alice: Person;
let bob: Person;
let web: Environment;
let vm: Environment;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request to the server, with any Host header (node's fetch will not send another host). */
function get(path: string, options: { headers?: Record<string, string>; host?: string } = {}): Promise<Answer> {
  const url = new URL(workspace.server.url);
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        headers: { ...(options.host ? { host: options.host } : {}), ...options.headers },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    request.on("error", reject);
    request.end();
  });
}

const bearer = (who: Person) => ({ authorization: `Bearer ${who.client.token}` });

async function startApp(environment: string, port: number, bind: string): Promise<void> {
  await ok(cvmBin, ["ssh", environment, "--", "sh", "-c", "cat > /tmp/app.pl"], { env: alice.env, input: app });
  await ok(
    cvmBin,
    ["ssh", environment, "--", "sh", "-c", `nohup perl /tmp/app.pl ${port} ${bind} >/dev/null 2>&1 </dev/null &`],
    { env: alice.env },
  );
}

async function waitForPort(environment: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { items } = await alice.client.ports(environment);
    if (items.some((p) => p.port === port && p.listening)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.fail(`port ${port} never listened in ${environment}`);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `cvm port-forward`, running until killed; resolves once it says it forwards. */
async function portForward(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(cvmBin, ["port-forward", ...args], { env: { ...process.env, ...alice.env, ...env } });
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  for (let i = 0; i < 300 && output.split("Forwarding").length <= args.length - 1; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, output: () => output };
}

function fetchThrough(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: "127.0.0.1", port, path }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
      );
    });
    request.on("error", reject);
    request.end();
  });
}

before(async () => {
  if (skip) return;
  workspace = await startWorkspaceServer("ports");
  alice = workspace.alice;
  bob = workspace.bob;
  [web, vm] = await Promise.all([
    workspace.environment(alice, { name: "web", image: image as string, cvm: false }),
    workspace.environment(alice, { name: "vm", image: cvmImage as string, cvm: true }),
  ]);
  await Promise.all([
    startApp("web", 8080, "127.0.0.1"),
    startApp("web", 3000, "0.0.0.0"),
    startApp("vm", 8080, "127.0.0.1"),
  ]);
  await Promise.all([waitForPort("web", 8080), waitForPort("web", 3000), waitForPort("vm", 8080)]);
});

after(async () => {
  await workspace?.close();
});

describe("ports of an environment", { skip }, () => {
  test("the list shows what listens inside, live, with where each opens", async () => {
    const { items, publicPorts } = await alice.client.ports("web");
    assert.equal(publicPorts, true);
    assert.deepEqual(
      items.map(({ port, listening, addresses, share, path }) => ({ port, listening, addresses, share, path })),
      [
        { port: 3000, listening: true, addresses: ["0.0.0.0"], share: "private", path: "/@alice/web/ports/3000/" },
        { port: 8080, listening: true, addresses: ["127.0.0.1"], share: "private", path: "/@alice/web/ports/8080/" },
      ],
    );
    const inCvm = await alice.client.ports("vm");
    assert.deepEqual(
      inCvm.items.filter((p) => p.port === 8080).map((p) => p.addresses),
      [["127.0.0.1"]],
    );
    await assert.rejects(bob.client.ports("web"), /not found/);
    await assert.rejects(bob.client.ports(web.id), /not found/);
  });

  for (const [way, env] of [
    ["cvm's bridge relays the CLI's hop", {}],
    ["Node copies the CLI's hop (as on macOS)", { CVM_PORT_FORWARD_BRIDGE: "0" }],
  ] as const) {
    test(`cvm port-forward, ${way}: loopback only, bytes intact, a port nothing listens on said plainly`, async () => {
      const local = await freePort();
      const other = await freePort();
      const forward = await portForward(["web", `${local}:8080`, `${other}:9`], env);
      try {
        assert.match(forward.output(), new RegExp(`Forwarding 127\\.0\\.0\\.1:${local} -> web:8080`));
        const hello = await fetchThrough(local, "/");
        assert.equal(hello.body.toString(), "hello from 8080 at /\n");
        const big = await fetchThrough(local, `/big/${4 * 1024 * 1024}`);
        assert.equal(big.body.length, 4 * 1024 * 1024);
        assert.ok(
          big.body.every((byte, i) => byte === (i % 65536) % 251),
          "every byte as the app sent it",
        );

        // Not on this machine's other addresses.
        const external = Object.values(networkInterfaces())
          .flat()
          .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
        if (external) {
          const reached = await new Promise<boolean>((resolve) => {
            const socket = connect(local, external);
            socket.on("connect", () => {
              socket.destroy();
              resolve(true);
            });
            socket.on("error", () => resolve(false));
          });
          assert.equal(reached, false, `port-forward listened on ${external}`);
        }

        const started = Date.now();
        await assert.rejects(fetchThrough(other, "/"));
        assert.ok(Date.now() - started < 15_000);
        for (let i = 0; i < 50 && !forward.output().includes("port 9:"); i++)
          await new Promise((r) => setTimeout(r, 100));
        assert.match(forward.output(), /cvm: port 9: Nothing listens on port 9 in web/);
      } finally {
        forward.child.kill();
      }
    });
  }

  test("cvm port-forward refuses a port that is not one", async () => {
    const bad = await run(cvmBin, ["port-forward", "web", "70000"], { env: alice.env });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /port 70000 must be a TCP port/);
  });

  test("the owner opens a port at /@owner/NAME/ports/PORT/: cvm's credentials stay out, its cookies too", async () => {
    const redirect = await get("/@alice/web/ports/8080", { headers: bearer(alice) });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.location, "/@alice/web/ports/8080/");
    const page = await get("/@alice/web/ports/8080/some/page?x=1", { headers: bearer(alice) });
    assert.equal(page.status, 200);
    assert.equal(page.body.toString(), "hello from 8080 at /some/page?x=1\n");
    assert.equal(page.headers["content-security-policy"], undefined, "the owner's own page is not sandboxed");
    assert.deepEqual(page.headers["set-cookie"], ["app=1; Path=/"], "the app cannot set cvm's cookies");
    const seen = (
      await get("/@alice/web/ports/8080/headers", {
        headers: { ...bearer(alice), cookie: "cvm_session=secret; theirs=1" },
      })
    ).body.toString();
    assert.doesNotMatch(seen, /cvm_|authorization/i);
    assert.match(seen, /^cookie: theirs=1\r?$/m);
    assert.match(seen, /^x-forwarded-prefix: \/@alice\/web\/ports\/8080\r?$/m);
    const inCvm = await get("/@alice/vm/ports/8080/", { headers: bearer(alice) });
    assert.equal(inCvm.body.toString(), "hello from 8080 at /\n");
    const nothing = await get("/@alice/web/ports/9/", { headers: bearer(alice) });
    assert.equal(nothing.status, 503);
    assert.match(nothing.body.toString(), /Nothing listens on port 9 in web/);
  });

  test("streaming responses and WebSockets pass through", async () => {
    const url = new URL(workspace.server.url);
    const firstAt = await new Promise<{ first: number; end: number; text: string }>((resolve, reject) => {
      const started = Date.now();
      let first = 0;
      let text = "";
      const request = httpRequest(
        { host: url.hostname, port: url.port, path: "/@alice/web/ports/8080/stream", headers: bearer(alice) },
        (response) => {
          response.on("data", (chunk) => {
            if (!first) first = Date.now() - started;
            text += chunk;
          });
          response.on("end", () => resolve({ first, end: Date.now() - started, text }));
        },
      );
      request.on("error", reject);
      request.end();
    });
    assert.equal(firstAt.text, "first\nsecond\n");
    assert.ok(
      firstAt.end - firstAt.first >= 1500,
      `the first line came ${firstAt.first} ms in, the end ${firstAt.end} ms`,
    );

    const echoed = await new Promise<string>((resolve, reject) => {
      const socket = new WebSocket(`${workspace.server.url.replace("http", "ws")}/@alice/web/ports/8080/ws`, {
        headers: bearer(alice),
      });
      socket.on("open", () => socket.send("hi over ws"));
      socket.on("message", (data) => {
        resolve(data.toString());
        socket.close();
      });
      socket.on("error", reject);
    });
    assert.equal(echoed, "echo: hi over ws");
  });

  test("shares: private to the owner, then every signed-in user, then anyone; checked on every request", async () => {
    const path = "/@alice/web/ports/3000/";
    assert.equal((await get(path, { headers: bearer(bob) })).status, 404, "private: another member sees nothing");
    assert.equal((await get(path)).status, 401, "private: nobody signed in is asked to sign in");
    await assert.rejects(bob.client.setPortShare(web.id, 3000, { share: "public" }), /not found/);
    await assert.rejects(
      workspace.admin.client.setPortShare(web.id, 3000, { share: "public" }),
      /Only the environment's owner/,
    );

    await alice.client.setPortShare("web", 3000, { share: "authenticated" });
    const shared = await get(path, { headers: bearer(bob) });
    assert.equal(shared.status, 200);
    assert.equal(shared.body.toString(), "hello from 3000 at /\n");
    assert.match(
      String(shared.headers["content-security-policy"]),
      /^sandbox allow-scripts/,
      "others get a sandboxed page",
    );
    const ticket = (shared.headers["set-cookie"] ?? []).find((c) => c.startsWith("cvm_port="));
    assert.match(String(ticket), /; Path=\/@alice\/web\/ports\/3000\/; HttpOnly; SameSite=Lax/);
    // The sandboxed page's own requests carry that ticket instead of the session.
    const cookie = String(ticket).split(";")[0];
    assert.equal((await get(`${path}again`, { headers: { cookie } })).status, 200);
    assert.equal((await get("/@alice/web/ports/8080/", { headers: { cookie } })).status, 401, "one port's ticket only");
    assert.equal((await get(path)).status, 401);

    await alice.client.setPortShare("web", 3000, { share: "public" });
    const open = await get(path);
    assert.equal(open.status, 200);
    assert.match(String(open.headers["content-security-policy"]), /^sandbox/);

    // The admin turns public sharing off: the public port is signed-in only, at once.
    await workspace.admin.client.updateInfrastructure({ publicPorts: false });
    try {
      assert.equal((await get(path)).status, 401);
      assert.equal((await get(path, { headers: bearer(bob) })).status, 200);
      await assert.rejects(
        alice.client.setPortShare("web", 8080, { share: "public" }),
        /Public sharing of ports is turned off/,
      );
    } finally {
      await workspace.admin.client.updateInfrastructure({ publicPorts: true });
    }
    await alice.client.setPortShare("web", 3000, { share: "private" });
    assert.equal((await get(path, { headers: { cookie } })).status, 404, "the ticket no longer opens a private port");
  });

  test("a port's own host under the wildcard host: a hand-off through the dashboard, then a cookie of its own", async () => {
    await workspace.admin.client.updateInfrastructure({ portsHost: "ports.test" });
    try {
      const host = "8080--web--alice.ports.test";
      const { items } = await alice.client.ports("web");
      assert.equal(items.find((p) => p.port === 8080)?.hostUrl, `http://${host}/`);

      const anonymous = await get("/deep/path?q=1", { host });
      assert.equal(anonymous.status, 302);
      const open = new URL(String(anonymous.headers.location));
      assert.equal(open.host, new URL(workspace.server.url).host, "the hand-off is at the dashboard's own address");
      assert.equal(open.pathname, `/api/v1/environments/${web.id}/ports/8080/open`);
      assert.equal(open.searchParams.get("to"), "/deep/path?q=1");

      const handoff = await get(`${open.pathname}${open.search}`, { headers: bearer(alice) });
      assert.equal(handoff.status, 302);
      const back = new URL(String(handoff.headers.location));
      assert.equal(back.host, host);
      const arrived = await get(`${back.pathname}${back.search}`, { host });
      assert.equal(arrived.status, 303);
      assert.equal(arrived.headers.location, "/deep/path?q=1", "the ticket leaves the URL");
      const cookie = String(arrived.headers["set-cookie"]?.[0]).split(";")[0];
      const page = await get("/deep/path?q=1", { host, headers: { cookie } });
      assert.equal(page.status, 200);
      assert.equal(page.body.toString(), "hello from 8080 at /deep/path?q=1\n");
      assert.equal(page.headers["content-security-policy"], undefined, "its own origin needs no sandbox");
      // Even /api/v1 on a port's host is the app's.
      assert.equal(
        (await get("/api/v1/openapi.json", { host, headers: { cookie } })).body.toString(),
        "hello from 8080 at /api/v1/openapi.json\n",
      );

      // Bob is refused at the hand-off while the port is private; a ticket for another port opens nothing.
      const refused = await get(`${open.pathname}${open.search}`, { headers: bearer(bob) });
      assert.equal(refused.status, 404);
      assert.equal((await get("/", { host: "3000--web--alice.ports.test", headers: { cookie } })).status, 302);
      assert.equal(
        (await get("/", { host: "8080--web--alice.ports.test", headers: { cookie: "cvm_port=forged.x" } })).status,
        302,
      );
    } finally {
      await workspace.admin.client.updateInfrastructure({ portsHost: "" });
    }
  });

  test("a stopped environment says so; the audit log says who opened what", async () => {
    const entries = await workspace.admin.client.audit({ action: "environment.port-open" });
    const seen = entries.items.map((e) => `${e.actorEmail} ${e.target} ${(e.after as { via: string }).via}`);
    assert.ok(seen.includes(`alice@example.com environment/${web.id}/ports/8080 forward`), seen.join("\n"));
    assert.ok(seen.includes(`alice@example.com environment/${web.id}/ports/8080 path`), seen.join("\n"));
    assert.ok(seen.includes(`bob@example.com environment/${web.id}/ports/3000 path`), seen.join("\n"));
    assert.ok(
      seen.some((s) => s.startsWith("anonymous (") && s.endsWith(`environment/${web.id}/ports/3000 path`)),
      seen.join("\n"),
    );
    assert.ok(seen.includes(`alice@example.com environment/${web.id}/ports/8080 host`), seen.join("\n"));
    const shares = await workspace.admin.client.audit({ action: "environment.port-share" });
    assert.ok(shares.items.some((e) => (e.after as { share: string }).share === "public"));

    await alice.client.stopEnvironment(vm.id);
    const stopped = await get("/@alice/vm/ports/8080/", { headers: bearer(alice) });
    assert.equal(stopped.status, 409);
    assert.match(stopped.body.toString(), /vm is stopped/);
    assert.deepEqual((await alice.client.ports("vm")).items, []);
  });
});
