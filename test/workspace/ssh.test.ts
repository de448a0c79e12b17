/**
 * `ssh NAME.cvm` as a user lives with it, on a real server with the docker
 * provider: `cvm config-ssh` writes the block, then Debian's own OpenSSH
 * client (`ssh`, `scp`, `sftp`, `rsync -e ssh`) reaches a standard
 * environment and a real CVM through the ProxyCommand `cvm ssh --stdio`:
 * the image's user in its home, exit codes, stderr apart, variables, a pty,
 * files both ways, `ssh -L`, agent forwarding, and the channel sequence VS
 * Code Remote-SSH opens. Then every way in that must stay shut.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { after, before, describe, test } from "node:test";
import ssh2 from "ssh2";
import WebSocket from "ws";
import { blockEnd, blockStart } from "../../src/cli/config-ssh.js";
import type { Environment } from "../../src/core/environment.js";
import { hostKeyFile } from "../../src/ssh/host-key.js";
import {
  agentProbe,
  cvmBin,
  echoServer,
  firstAnswerThrough,
  lineThrough,
  ok,
  type Person,
  run,
  startWorkspaceServer,
  type WorkspaceServer,
  withSshTunnel,
} from "./harness.js";

const systemdImage = process.env.CVM_TEST_IMAGE_SYSTEMD;
const cvmImage = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
const plainImage = process.env.CVM_TEST_IMAGE_PLAIN;
const skip = (!systemdImage || !cvmImage || !plainImage) && "run through `npm test`, which builds the test images";

let workspace: WorkspaceServer;
let alice: Person;
const environments: Record<"standard" | "cvm", Environment> = {} as never;
let sshConfig: string;

/** ssh with the config `cvm config-ssh` wrote, never prompting. */
function ssh(args: string[], options: { input?: string; person?: Person; timeoutMs?: number } = {}) {
  const who = options.person ?? alice;
  return run("ssh", ["-F", join(who.home, ".ssh", "config"), "-o", "BatchMode=yes", ...args], {
    env: who.env,
    input: options.input,
    timeoutMs: options.timeoutMs,
  });
}

/** An ssh2 client over the ProxyCommand itself, to drive channels as VS Code does. */
async function sshClient(host: string, who: Person = alice): Promise<ssh2.Client> {
  const proxy = spawn(cvmBin, ["ssh", "--stdio", host], { env: { ...process.env, ...who.env } });
  proxy.stderr.on("data", () => undefined);
  const sock = Duplex.from({ readable: proxy.stdout, writable: proxy.stdin });
  const client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.once("ready", () => resolve());
    client.once("error", reject);
    client.connect({ sock, username: "cvm", readyTimeout: 120_000 });
  });
  client.once("close", () => proxy.kill());
  return client;
}

function exec(client: ssh2.Client, command: string, options: ssh2.ExecOptions = {}, input?: string) {
  return new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve, reject) => {
    client.exec(command, options, (error, channel) => {
      if (error) return reject(error);
      let stdout = "";
      let stderr = "";
      let code: number | null = null;
      channel.on("data", (data: Buffer) => {
        stdout += data;
      });
      channel.stderr.on("data", (data: Buffer) => {
        stderr += data;
      });
      channel.on("exit", (exitCode: number | null) => {
        code = exitCode;
      });
      channel.on("close", () => resolve({ stdout, stderr, code }));
      channel.end(input);
    });
  });
}

/** The node's cvm-nsbridge processes serving an agent socket inside an environment, by their command lines. */
function agentBridges(): string[] {
  return readdirSync("/proc")
    .filter((pid) => /^\d+$/.test(pid))
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      } catch {
        return "";
      }
    })
    .filter(
      (command) => command.includes("cvm-nsbridge") && command.includes("/cvm-ssh-") && command.includes(" listen "),
    );
}

before(async () => {
  if (skip) return;
  workspace = await startWorkspaceServer("ssh");
  alice = workspace.alice;
  const [standard, cvm] = await Promise.all([
    workspace.environment(alice, { name: "box", image: systemdImage as string, cvm: false }),
    workspace.environment(alice, { name: "vm", image: cvmImage as string, cvm: true }),
  ]);
  environments.standard = standard;
  environments.cvm = cvm;
  sshConfig = join(alice.home, ".ssh", "config");
});

after(async () => {
  await workspace?.close();
});

test("cvm config-ssh writes its block between markers, pins the host key, and updates idempotently", {
  skip,
}, async () => {
  writeFileSync(sshConfig, "Host github.com\n  User git\n");
  chmodSync(sshConfig, 0o644);
  const out = await ok(cvmBin, ["config-ssh"], { env: alice.env });
  assert.match(out, /ssh box\.cvm/);
  assert.match(out, /ssh vm\.cvm/);
  const written = readFileSync(sshConfig, "utf8");
  assert.ok(written.startsWith("Host github.com\n  User git\n\n"), written);
  assert.match(written, /^Host box\.cvm vm\.cvm$/m);
  assert.match(written, /^ {2}ProxyCommand \S+\/bin\/cvm ssh --stdio %n$/m);
  assert.equal(statSync(sshConfig).mode & 0o777, 0o644, "the file keeps its mode");
  const knownHosts = readFileSync(join(alice.home, ".ssh", "cvm_known_hosts"), "utf8");
  const hostKey = await alice.client.sshHostKey();
  assert.equal(knownHosts, `*.cvm ${hostKey.publicKey}\n`);

  // Again: nothing changes; with a new environment, only the block does.
  assert.match(await ok(cvmBin, ["config-ssh"], { env: alice.env }), /^unchanged/);
  assert.equal(readFileSync(sshConfig, "utf8"), written);
  writeFileSync(sshConfig, `${written}Host after\n  User me\n`);
  await ok(cvmBin, ["config-ssh", "--ssh-config", sshConfig], { env: alice.env });
  const again = readFileSync(sshConfig, "utf8");
  assert.equal(again.split(blockStart).length, 2, "one block");
  assert.ok(again.endsWith(`${blockEnd}\nHost after\n  User me\n`), again);

  // --remove leaves the user's own lines.
  const copy = join(alice.home, "copy_config");
  writeFileSync(copy, again);
  await ok(cvmBin, ["config-ssh", "--remove", "--ssh-config", copy], { env: alice.env });
  assert.equal(readFileSync(copy, "utf8"), "Host github.com\n  User git\nHost after\n  User me\n");
});

for (const kind of ["standard", "cvm"] as const) {
  describe(`ssh NAME.cvm into a ${kind === "cvm" ? "CVM" : "standard environment"}`, { skip }, () => {
    const host = () => `${environments[kind].name}.cvm`;

    test("lands as the image's user in its home with its login shell; exit codes and stderr come back", async () => {
      const result = await ssh([host(), "id -un; pwd; echo $SHELL; echo oops >&2; exit 7"]);
      assert.equal(result.code, 7, result.stderr);
      assert.equal(result.stdout, "dev\n/home/dev\n/bin/bash\n");
      assert.equal(result.stderr.trim(), "oops");
      const root = await ssh([`root@${host()}`, "id -un; pwd"]);
      assert.equal(root.stdout, "root\n/root\n", root.stderr);
      // The terminal (`cvm ssh`) lands the same way.
      const name = environments[kind].name;
      assert.equal(
        await ok(cvmBin, ["ssh", name, "--", "sh", "-c", "id -un; pwd"], { env: alice.env }),
        "dev\n/home/dev\n",
      );
      assert.equal(await ok(cvmBin, ["ssh", "--user", "root", name, "--", "id", "-un"], { env: alice.env }), "root\n");
      // The account's groups come along: in the CVM image, dev runs Docker.
      const groups = await ssh([host(), "id -Gn"]);
      assert.match(groups.stdout, kind === "cvm" ? /\bdocker\b/ : /\bsudo\b/, groups.stderr);
      // A developer's tools are there, as on a VM.
      const tools = await ssh([host(), "git --version && ssh -V 2>&1 && curl --version | head -1"]);
      assert.match(tools.stdout, /^git version .*\nOpenSSH_.*\ncurl /, tools.stderr);
    });

    test("stdin reaches the command; variables sent with SetEnv arrive", async () => {
      const piped = await ssh([host(), "wc -c"], { input: "twelve bytes" });
      assert.equal(piped.stdout.trim(), "12", piped.stderr);
      const env = await ssh(["-o", "SetEnv=GREETING=hello-from-laptop", host(), 'echo "$GREETING"']);
      assert.equal(env.stdout, "hello-from-laptop\n", env.stderr);
    });

    test("a pty when asked (ssh -t), with the terminal type sent", async () => {
      const result = await ssh(["-tt", host(), "tty; echo $TERM"], { person: alice });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^\/dev\/pts\/\d+\r\n/);
    });

    test("scp and sftp copy files both ways as the user; rsync over ssh syncs a tree", async () => {
      const local = join(alice.home, `files-${kind}`);
      mkdirSync(join(local, "tree", "sub"), { recursive: true });
      writeFileSync(join(local, "hello.txt"), "hello through scp\n");
      writeFileSync(join(local, "tree", "a.txt"), "a\n");
      writeFileSync(join(local, "tree", "sub", "b.txt"), "b\n".repeat(10_000));
      const env = alice.env;
      await ok("scp", ["-F", sshConfig, "-o", "BatchMode=yes", join(local, "hello.txt"), `${host()}:hello.txt`], {
        env,
      });
      const owner = await ssh([host(), "stat -c '%U %n' ~/hello.txt; cat ~/hello.txt"]);
      assert.equal(owner.stdout, "dev /home/dev/hello.txt\nhello through scp\n", owner.stderr);
      await ok("scp", ["-F", sshConfig, "-o", "BatchMode=yes", `${host()}:hello.txt`, join(local, "back.txt")], {
        env,
      });
      assert.equal(readFileSync(join(local, "back.txt"), "utf8"), "hello through scp\n");

      const batch = await run("sftp", ["-F", sshConfig, "-o", "BatchMode=yes", "-b", "-", host()], {
        env,
        input: `mkdir sftp-dir\nput ${join(local, "tree", "a.txt")} sftp-dir/a.txt\nls sftp-dir\n`,
      });
      assert.equal(batch.code, 0, batch.stderr);
      assert.match(batch.stdout, /sftp-dir\/a\.txt/);

      await ok(
        "rsync",
        ["-a", "-e", `ssh -F ${sshConfig} -o BatchMode=yes`, `${join(local, "tree")}/`, `${host()}:tree/`],
        {
          env,
        },
      );
      const synced = await ssh([host(), "cd ~/tree && find . -type f | sort && wc -l < sub/b.txt"]);
      assert.equal(synced.stdout, "./a.txt\n./sub/b.txt\n10000\n", synced.stderr);
      // A second run sends nothing that is already there.
      const second = await ok(
        "rsync",
        ["-a", "--stats", "-e", `ssh -F ${sshConfig} -o BatchMode=yes`, `${join(local, "tree")}/`, `${host()}:tree/`],
        { env },
      );
      assert.match(second, /Number of regular files transferred: 0/);
    });

    test("ssh -L reaches a server bound to 127.0.0.1 inside; a port nothing listens on fails at once", async () => {
      const port = kind === "cvm" ? 18081 : 18080;
      await ok("ssh", ["-F", sshConfig, "-o", "BatchMode=yes", host(), echoServer(port)], { env: alice.env });
      await withSshTunnel(
        { config: sshConfig, host: host(), env: alice.env },
        [port, 1],
        async ([open, shut], said) => {
          assert.equal(await firstAnswerThrough(open, "hi there\n"), "echo from inside: hi there\n", said());
          const started = Date.now();
          assert.equal(await lineThrough(shut, "hi there\n").catch(() => ""), "");
          assert.ok(Date.now() - started < 10_000, "a refused forward fails at once");
          assert.match(said(), /open failed/);
        },
      );
    });

    test("agent forwarding: ssh -A gives the session a socket of the user's that reaches the laptop's agent", async () => {
      const agentDir = join(alice.home, `agent-${kind}`);
      mkdirSync(agentDir, { recursive: true });
      const agentSocket = join(agentDir, "agent.sock");
      const agent = spawn("ssh-agent", ["-D", "-a", agentSocket], { stdio: "ignore" });
      try {
        for (let i = 0; i < 50 && !existsSync(agentSocket); i++) await new Promise((r) => setTimeout(r, 100));
        await ok("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(agentDir, "id")]);
        await ok("ssh-add", [join(agentDir, "id")], { env: { SSH_AUTH_SOCK: agentSocket } });
        const result = await run(
          "ssh",
          [
            "-F",
            sshConfig,
            "-o",
            "BatchMode=yes",
            "-A",
            host(),
            `stat -c '%U %a' "$SSH_AUTH_SOCK"; ${agentProbe}; ssh-add -l | cut -d' ' -f2`,
          ],
          { env: { ...alice.env, SSH_AUTH_SOCK: agentSocket } },
        );
        assert.equal(result.code, 0, result.stderr);
        // What a user runs inside (the image's own ssh-add) lists the laptop's key.
        const fingerprint = (await ok("ssh-keygen", ["-lf", join(agentDir, "id.pub")])).split(" ")[1];
        assert.equal(result.stdout, `dev 600\nanswer=12 keys=1\n${fingerprint}\n`);
        // The socket's bridge on the node ends with the SSH connection.
        let lingering: string[] = [];
        for (let i = 0; i < 50; i++) {
          lingering = agentBridges();
          if (lingering.length === 0) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        assert.deepEqual(lingering, []);
        const without = await ssh([host(), 'echo "[$SSH_AUTH_SOCK]"']);
        assert.equal(without.stdout, "[]\n", "no agent unless asked");
      } finally {
        agent.kill();
      }
    });

    test("what VS Code Remote-SSH opens: a bash script on stdin, a server left running, then direct-tcpip to it", async () => {
      const client = await sshClient(host());
      try {
        const install = `set -e
case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch=unknown ;; esac
echo "platform==$(uname -s | tr A-Z a-z)==arch==$arch=="
dir=~/.vscode-server-test
mkdir -p "$dir"
rm -f "$dir/port"
cat > "$dir/server.pl" <<'EOF'
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 5, ReuseAddr => 1) or die "$!";
open(my $f, ">", "$ENV{HOME}/.vscode-server-test/port.tmp"); print $f $s->sockport; close $f;
rename("$ENV{HOME}/.vscode-server-test/port.tmp", "$ENV{HOME}/.vscode-server-test/port");
while (my $c = $s->accept) { my $l = <$c>; print $c "server says: $l"; close $c }
EOF
nohup perl "$dir/server.pl" > "$dir/log" 2>&1 < /dev/null &
for i in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
echo "listeningOn==$(cat "$dir/port")=="
`;
        const installed = await exec(client, "bash", {}, install);
        assert.equal(installed.code, 0, installed.stderr);
        assert.match(installed.stdout, /^platform==linux==arch==x64==$/m);
        const port = Number(/listeningOn==(\d+)==/.exec(installed.stdout)?.[1]);
        assert.ok(port > 0, installed.stdout);

        const reply = await new Promise<string>((resolve, reject) => {
          client.forwardOut("127.0.0.1", 0, "127.0.0.1", port, (error, channel) => {
            if (error) return reject(error);
            let text = "";
            channel.on("data", (data: Buffer) => {
              text += data;
            });
            channel.on("close", () => resolve(text));
            channel.write("hello server\n");
          });
        });
        assert.equal(reply, "server says: hello server\n");

        // A shell with a pty follows the window's size.
        const size = await new Promise<string>((resolve, reject) => {
          client.shell({ term: "xterm-256color", rows: 24, cols: 80 }, (error, channel) => {
            if (error) return reject(error);
            let text = "";
            channel.on("data", (data: Buffer) => {
              text += data;
            });
            channel.on("close", () => resolve(text));
            setTimeout(() => {
              channel.setWindow(33, 111, 0, 0);
              setTimeout(() => channel.end("stty size; exit\n"), 500);
            }, 1000);
          });
        });
        assert.match(size, /^33 111\r?$/m);
      } finally {
        client.end();
      }
    });
  });
}

describe("what stays shut", { skip }, () => {
  test("an unauthenticated WebSocket is refused with a 401, before any SSH byte", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(`${workspace.server.url.replace("http", "ws")}/api/v1/environments/box/ssh`);
      socket.on("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
      socket.on("open", () => reject(new Error("opened without a token")));
      socket.on("error", reject);
    });
    assert.equal(status, 401);
    const noToken = await run("ssh", ["-F", sshConfig, "-o", "BatchMode=yes", "box.cvm", "true"], {
      env: { ...alice.env, CVM_TOKEN: "cvm_not_a_real_token" },
    });
    assert.equal(noToken.code, 255);
    assert.match(noToken.stderr, /cvm: .*(token|sign in|session)/i);
  });

  test("another member reaches none of alice's environments, by name or by id", async () => {
    const bob = workspace.bob;
    await ok(cvmBin, ["config-ssh"], { env: bob.env });
    for (const target of ["box", environments.standard.id, environments.cvm.id]) {
      const result = await run(
        "ssh",
        ["-F", join(bob.home, ".ssh", "config"), "-o", "BatchMode=yes", `${target}.cvm`, "id"],
        { env: bob.env },
      );
      assert.equal(result.code, 255, result.stdout);
      assert.match(result.stderr, /not found/);
      assert.equal(result.stdout, "");
    }
  });

  test("the session cookie of another site cannot open an SSH WebSocket", async () => {
    const login = await fetch(`${workspace.server.url}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "alice@example.com", password: "correct horse battery" }),
    });
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
    const status = await new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(`${workspace.server.url.replace("http", "ws")}/api/v1/environments/box/ssh`, {
        headers: { cookie, origin: "https://evil.example" },
      });
      socket.on("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
      socket.on("open", () => reject(new Error("opened from another origin")));
      socket.on("error", reject);
    });
    assert.equal(status, 403);
  });

  test("ssh -L to anything but the environment itself is refused", async () => {
    const client = await sshClient("box.cvm");
    try {
      await assert.rejects(
        new Promise((resolve, reject) =>
          client.forwardOut("127.0.0.1", 0, "10.0.0.1", 80, (error, channel) =>
            error ? reject(error) : resolve(channel),
          ),
        ),
        /open failure/i,
      );
    } finally {
      client.end();
    }
  });

  test("an image without sftp-server says so; ssh starts a stopped environment, saying so", async () => {
    await workspace.environment(alice, { name: "plain", image: plainImage as string, cvm: false });
    const scp = await run("scp", ["-F", sshConfig, "-o", "BatchMode=yes", sshConfig, "plain.cvm:x"], {
      env: alice.env,
    });
    assert.notEqual(scp.code, 0);
    assert.match(scp.stderr, /no sftp-server .* install openssh-sftp-server/);
    const whoami = await ssh(["plain.cvm", "id -un; pwd"]);
    assert.equal(whoami.stdout, "root\n/root\n", "no user in the image: root");

    await alice.client.stopEnvironment("plain");
    const started = await ssh(["plain.cvm", "echo up"], { timeoutMs: 240_000 });
    assert.equal(started.code, 0, started.stderr);
    assert.equal(started.stdout, "up\n");
    assert.match(started.stderr, /cvm: plain is stopped: starting it\n(.*\n)*cvm: plain is running\n/);
    assert.equal((await alice.client.environment("plain")).state, "running");
  });

  test("the host key is made once in the data dir, root's only, and audit records who connected", async () => {
    const keyFile = join(workspace.dataDir, hostKeyFile);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.match(readFileSync(keyFile, "utf8"), /^-----BEGIN OPENSSH PRIVATE KEY-----/);
    const entries = await workspace.admin.client.audit({ action: "environment.ssh" });
    assert.ok(
      entries.items.some(
        (e) => e.actorEmail === "alice@example.com" && e.target === `environment/${environments.cvm.id}`,
      ),
    );
  });
});
