/**
 * A real cvm server on the docker provider for the workspace tests (SSH,
 * ports): CVMs turned on, a site admin and two members, environments built
 * and followed to running, and the real `cvm`, `ssh`, `scp`, `sftp` and
 * `rsync` run as a user would, against a HOME of the test's own.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import type { Environment } from "../../src/core/environment.js";
import type { Provider } from "../../src/core/provider.js";
import { createDockerProvider } from "../../src/providers/docker/index.js";
import type { RunningServer } from "../../src/server/index.js";
import { fixtureDataDir } from "../harness/cvm.js";
import { freePort } from "../harness/ports.js";
import { type SignedIn, startTestServer, testDockerHost } from "../harness/server.js";

export const cvmBin = join(import.meta.dirname, "..", "..", "bin", "cvm");

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Person {
  client: SignedIn;
  /** A HOME of this person's own: ~/.ssh and the CLI's config live there. */
  home: string;
  /** The environment the real `cvm` and `ssh` get: this person's HOME, server and token. */
  env: Record<string, string>;
}

export interface WorkspaceServer {
  server: RunningServer;
  /** The server's own data dir (its store, its SSH host key). */
  dataDir: string;
  provider: Provider;
  admin: Person;
  alice: Person;
  bob: Person;
  /** Creates an environment for `person` and waits until it runs (or fails the test with its log). */
  environment(person: Person, request: { name: string; image: string; cvm: boolean }): Promise<Environment>;
  /** Waits until an environment `person` created runs (or fails the test with its log); deleted on close. */
  follow(person: Person, created: Environment): Promise<Environment>;
  close(): Promise<void>;
}

/** A tiny server inside the environment (Perl is in every Debian image): one line in, one line back. */
export const echoServer = (port: number) =>
  `nohup perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"127.0.0.1",LocalPort=>${port},Listen=>5,ReuseAddr=>1) or die "$!"; while($c=$s->accept){$l=<$c>; print $c "echo from inside: $l"; close $c}' >/dev/null 2>&1 </dev/null &`;

/** Asks the agent at SSH_AUTH_SOCK how many keys it holds (the protocol's REQUEST_IDENTITIES). */
export const agentProbe = `perl -MIO::Socket::UNIX -e '$s=IO::Socket::UNIX->new(Peer=>$ENV{SSH_AUTH_SOCK}) or die "no agent: $!\\n"; print $s pack("NC",1,11); read($s,$l,4); read($s,$b,unpack("N",$l)); ($t,$n)=unpack("CN",$b); print "answer=$t keys=$n\\n"'`;

/** Runs a program to its end, with stdin from `input` (else closed); never longer than `timeoutMs`. */
export function run(
  program: string,
  args: string[],
  options: { env?: Record<string, string>; input?: string | Buffer; timeoutMs?: number; cwd?: string } = {},
): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(program, args, {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input);
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${options.timeoutMs ?? 120_000} ms]`;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? 120_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** Fails with everything the program said when it did not exit 0. */
export async function ok(program: string, args: string[], options: Parameters<typeof run>[2] = {}): Promise<string> {
  const result = await run(program, args, options);
  assert.equal(result.code, 0, `${program} ${args.join(" ")} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

export async function startWorkspaceServer(purpose: string): Promise<WorkspaceServer> {
  // The engine's data dir persists between runs, so CVM images pulled once stay.
  const provider = await createDockerProvider({
    kind: "docker",
    dataDir: fixtureDataDir(purpose),
    logger: pino({ level: process.env.CVM_TEST_LOG_LEVEL ?? "warn" }, pino.destination(2)),
    dockerHost: testDockerHost,
  });
  const test = await startTestServer({ provider });
  const { server, dataDir } = test;
  const person = (client: SignedIn, name: string): Person => {
    const home = join(dataDir, "homes", name);
    mkdirSync(join(home, ".ssh"), { recursive: true, mode: 0o700 });
    return {
      client,
      home,
      env: {
        HOME: home,
        CVM_URL: server.url,
        CVM_TOKEN: client.token as string,
        CVM_CONFIG_DIR: join(home, ".config", "cvm"),
      },
    };
  };
  const adminClient = await test.firstAdmin();
  await adminClient.updateInfrastructure({ cvmEnabled: true, force: true });
  const member = (email: string) => test.userWithRole(adminClient, "member", email);
  const made: { person: Person; name: string }[] = [];
  const workspace: WorkspaceServer = {
    server,
    dataDir,
    provider,
    admin: person(adminClient, "admin"),
    alice: person(await member("alice@example.com"), "alice"),
    bob: person(await member("bob@example.com"), "bob"),
    async environment(who, request) {
      return workspace.follow(who, await who.client.createEnvironment({ ...request, cpu: 1, memoryGiB: 1 }));
    },
    async follow(who, created) {
      made.push({ person: who, name: created.name });
      const lines: string[] = [];
      for await (const item of who.client.logs(created.id, {
        build: created.buildId as string,
        follow: true,
        signal: AbortSignal.timeout(300_000),
      })) {
        if ("end" in item) {
          assert.equal(item.outcome, "running", `${created.name} did not start:\n${lines.join("\n")}`);
          break;
        }
        lines.push(item.text);
      }
      return who.client.environment(created.id);
    },
    async close() {
      for (const { person, name } of made) await person.client.deleteEnvironment(name).catch(() => undefined);
      // The server closes the provider it was given; the harness removes its data dir.
      await test.close();
    },
  };
  return workspace;
}

/** One line to a TCP port on this machine, and all it answers until it closes. */
export function lineThrough(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.on("connect", () => socket.write(line));
    socket.on("data", (chunk) => {
      answer += chunk;
    });
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
  });
}

/**
 * `ssh -N -L` from free local ports to each of `remotePorts` on the host's
 * loopback, as a user opens a tunnel; `use` gets the local ports (in the same
 * order) and what ssh has said so far. ssh listens only once its session is
 * up: ask through firstAnswerThrough first.
 */
export async function withSshTunnel(
  ssh: { config: string; host: string; env: Record<string, string> },
  remotePorts: number[],
  use: (localPorts: number[], said: () => string) => Promise<void>,
): Promise<void> {
  const localPorts = await Promise.all(remotePorts.map(() => freePort()));
  const forwards = remotePorts.flatMap((remote, i) => ["-L", `${localPorts[i]}:localhost:${remote}`]);
  const tunnel = spawn(
    "ssh",
    ["-F", ssh.config, "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N", ...forwards, ssh.host],
    { env: { ...process.env, ...ssh.env }, stdio: ["ignore", "ignore", "pipe"] },
  );
  let said = "";
  tunnel.stderr.on("data", (chunk) => {
    said += chunk;
  });
  try {
    await use(localPorts, () => said);
  } finally {
    tunnel.kill();
  }
}

/**
 * lineThrough, asked again until something answers, for 20 s: the tunnel's
 * listener and a server just started inside both take a moment.
 */
export async function firstAnswerThrough(port: number, line: string): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const answer = await lineThrough(port, line).catch(() => "");
    if (answer) return answer;
    await sleep(200);
  }
  return "";
}

/** What a CVM's sessions read of its size: the commands, one answer per line (read by assertOwnProc). */
export const ownProcScript = [
  "nproc",
  "getconf _NPROCESSORS_ONLN",
  "echo $OMP_NUM_THREADS",
  "grep -c ^processor /proc/cpuinfo",
  "cat /sys/devices/system/cpu/online",
  "free -m | awk '/^Mem:/ {print $2}'",
  "grep ^MemTotal /proc/meminfo",
  "cut -d. -f1 /proc/uptime",
].join("; ");

/**
 * Asserts that ownProcScript's output shows a machine of the CVM's own size
 * and uptime (LXCFS's /proc and CPU list; OMP_NUM_THREADS, which GNU nproc
 * answers, from every session cvm opens), not the node's.
 */
export function assertOwnProc(output: string, size: { cpus: number; memoryMiB: number }): void {
  const [nproc, online, threads, processors, onlineCpus, freeMiB, memTotal, uptime] = output.split("\n");
  const cpus = String(size.cpus);
  assert.deepEqual(
    { nproc, online, threads, processors, onlineCpus, freeMiB, memTotal: memTotal?.replace(/\s+/g, " ") },
    {
      nproc: cpus,
      online: cpus,
      threads: cpus,
      processors: cpus,
      onlineCpus: size.cpus === 1 ? "0" : `0-${size.cpus - 1}`,
      freeMiB: String(size.memoryMiB),
      memTotal: `MemTotal: ${size.memoryMiB * 1024} kB`,
    },
  );
  const nodeUptime = Number(readFileSync("/proc/uptime", "utf8").split(".")[0]);
  assert.ok(Number(uptime) < nodeUptime, `the CVM's uptime ${uptime} s is its own, not the node's ${nodeUptime} s`);
}
