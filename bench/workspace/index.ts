/**
 * bench/workspace: the ways into an environment, against cvm's own or the
 * container's, measured in this run on this machine (a standard environment
 * on the host's engine; the server in this process, every client its own).
 *
 * (a) `ssh NAME.cvm true` (OpenSSH through the ProxyCommand `cvm ssh
 *     --stdio`, the SSH server in cvm server) against `cvm ssh NAME -- true`
 *     (the terminal WebSocket): both start the cvm CLI, so the difference is
 *     SSH's own handshake and channel;
 * (b) 1 GiB downloaded with curl through `cvm port-forward` against the same
 *     download from the container's address directly. Target: >= 0.5x.
 *     Also through the CLI's portable path (Node copying its hop, as on
 *     macOS), and the CPU seconds each process spent on each transfer.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Dockerode from "dockerode";
import { cvmBin, ok, startWorkspaceServer } from "../../test/workspace/harness.js";
import type { BenchContext, BenchResult } from "../types.js";
import { cpuTime, describeCpu } from "./cpu-time.js";

const execFileAsync = promisify(execFile);
const samples = Number(process.env.CVM_BENCH_SAMPLES ?? 5);
const transferBytes = Number(process.env.CVM_BENCH_TRANSFER_BYTES ?? 2 ** 30);
const appPort = 9000;

/** A server inside that sends the bytes asked for as fast as Perl writes 1 MiB blocks (fast enough to be no bottleneck). */
const source = `nohup perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"0.0.0.0",LocalPort=>${appPort},Listen=>20,ReuseAddr=>1) or die; $SIG{CHLD}="IGNORE"; my $b="\\0" x 1048576; while($c=$s->accept){ next if fork; my $l=<$c>; my ($n)=$l=~m{/(\\d+)}; while(<$c>){last if /^\\r?$/} syswrite($c,"HTTP/1.1 200 OK\\r\\nContent-Length: $n\\r\\nConnection: close\\r\\n\\r\\n"); while($n>0){my $k=$n<1048576?$n:1048576; my $w=syswrite($c,$b,$k); last unless $w; $n-=$w} exit 0}' >/dev/null 2>&1 </dev/null &`;

const load = () =>
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} on ${cpus().length} cores`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/** curl's own measure of a download, in bytes per second. */
async function download(url: string): Promise<number> {
  const { stdout } = await execFileAsync("curl", [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{size_download} %{speed_download}",
    url,
  ]);
  const [size, speed] = stdout.trim().split(" ").map(Number);
  if (size !== transferBytes) throw new Error(`downloaded ${size} bytes of ${transferBytes} from ${url}`);
  return speed;
}

/** `cvm port-forward bench LOCAL:9000`, running; resolves once it forwards. */
async function startForward(env: Record<string, string>, local: number): Promise<ChildProcess> {
  const forward = spawn(cvmBin, ["port-forward", "bench", `${local}:${appPort}`], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    forward.stdout?.on("data", (chunk: Buffer) => chunk.toString().includes("Forwarding") && resolve());
    forward.once("exit", (code) => reject(new Error(`cvm port-forward exited with ${code}`)));
  });
  return forward;
}

export async function run(context: BenchContext): Promise<BenchResult[]> {
  const image = process.env.CVM_TEST_IMAGE_SYSTEMD;
  if (!image) throw new Error("CVM_TEST_IMAGE_SYSTEMD is not set (npm run bench builds the test images)");
  const workspace = await startWorkspaceServer("bench-workspace");
  const { alice } = workspace;
  let forward: ChildProcess | undefined;
  let copying: ChildProcess | undefined;
  try {
    context.log("building a standard environment");
    const environment = await workspace.environment(alice, { name: "bench", image, cvm: false });
    await ok(cvmBin, ["config-ssh"], { env: alice.env });
    const sshConfig = join(alice.home, ".ssh", "config");
    await ok(cvmBin, ["ssh", "bench", "--", "sh", "-c", source], { env: alice.env });

    context.log(`ssh NAME.cvm true against cvm ssh NAME -- true, ${samples} each, alternating; ${load()}`);
    const viaSsh: number[] = [];
    const viaCvm: number[] = [];
    const cliStart: number[] = [];
    for (let i = 0; i < samples; i++) {
      // Where the time goes: both ways start the cvm CLI (Node) once; this is that start alone.
      cliStart.push(await timed(() => ok(cvmBin, ["--help"], { env: alice.env })));
      viaSsh.push(
        await timed(() => ok("ssh", ["-F", sshConfig, "-o", "BatchMode=yes", "bench.cvm", "true"], { env: alice.env })),
      );
      viaCvm.push(await timed(() => ok(cvmBin, ["ssh", "bench", "--", "true"], { env: alice.env })));
    }
    const ssh = median(viaSsh) / 1000;
    const cvm = median(viaCvm) / 1000;
    const cli = median(cliStart) / 1000;
    context.log(
      `ssh ${ssh.toFixed(2)} s, cvm ssh ${cvm.toFixed(2)} s, the CLI's start alone ${cli.toFixed(2)} s (medians)`,
    );

    const docker = new Dockerode({ socketPath: process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock" });
    const [container] = await docker.listContainers({ filters: { label: [`dev.cvm.environment=${environment.id}`] } });
    const address = Object.values(container.NetworkSettings.Networks)[0]?.IPAddress;
    if (!address) throw new Error("the environment's container has no address");
    const local = 19_000 + Math.floor(Math.random() * 1000);
    forward = await startForward(alice.env, local);
    // The portable path (Node copies the CLI's hop), beside the bridge.
    copying = await startForward({ ...alice.env, CVM_PORT_FORWARD_BRIDGE: "0" }, local + 1);
    context.log(
      `${transferBytes / 2 ** 20} MiB with curl: through cvm port-forward against ${address}:${appPort} directly`,
    );
    const direct: number[] = [];
    const forwarded: number[] = [];
    const copied: number[] = [];
    const kindOf = (pid: number, name: string) =>
      pid === forward?.pid || pid === copying?.pid
        ? "the cvm CLI"
        : pid === process.pid
          ? "cvm server"
          : ({ curl: "curl", perl: "the sender inside", "cvm-nsbridge": "the bridges" } as Record<string, string>)[
              name
            ];
    for (let i = 0; i < samples; i++) {
      const straight = await cpuTime(kindOf, () => download(`http://${address}:${appPort}/${transferBytes}`));
      direct.push(straight.result);
      const through = await cpuTime(kindOf, () => download(`http://127.0.0.1:${local}/${transferBytes}`));
      forwarded.push(through.result);
      const node = await cpuTime(kindOf, () => download(`http://127.0.0.1:${local + 1}/${transferBytes}`));
      copied.push(node.result);
      context.log(`CPU seconds, directly: ${describeCpu(straight.seconds)}`);
      context.log(`CPU seconds, through port-forward: ${describeCpu(through.seconds)}`);
      context.log(`CPU seconds, through port-forward copying in Node: ${describeCpu(node.seconds)}`);
    }
    const mbps = (bytesPerSecond: number) => bytesPerSecond / 2 ** 20;
    const through = mbps(median(forwarded));
    const straight = mbps(median(direct));
    const node = mbps(median(copied));
    context.log(
      `port-forward ${through.toFixed(0)} MiB/s (copying in Node ${node.toFixed(0)}), direct ${straight.toFixed(0)} MiB/s (medians); ${load()}`,
    );
    return [
      {
        name: "ssh NAME.cvm true",
        value: ssh,
        unit: "s",
        baseline: `cvm ssh NAME -- true: ${cvm.toFixed(2)} s`,
        ratio: ssh / cvm,
      },
      {
        name: "the cvm CLI's own start (cvm --help), in both",
        value: cli,
        unit: "s",
        baseline: `cvm ssh NAME -- true: ${cvm.toFixed(2)} s`,
        ratio: cli / cvm,
      },
      {
        name: `${transferBytes / 2 ** 30} GiB through cvm port-forward`,
        value: through,
        unit: "MiB/s",
        baseline: `the container's address directly: ${straight.toFixed(0)} MiB/s`,
        ratio: through / straight,
        target: ">= 0.5x",
        pass: through / straight >= 0.5,
      },
      {
        name: `${transferBytes / 2 ** 30} GiB through cvm port-forward, the CLI copying in Node (macOS, no bridge)`,
        value: node,
        unit: "MiB/s",
        baseline: `the container's address directly: ${straight.toFixed(0)} MiB/s`,
        ratio: node / straight,
      },
    ];
  } finally {
    forward?.kill();
    copying?.kill();
    await workspace.close();
  }
}
