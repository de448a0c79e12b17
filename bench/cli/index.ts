/**
 * bench/cli: how long a user waits for the CLI, against `node -e 0` (Node
 * starting and exiting: the floor) measured in the same run, every command
 * once per round in turns so the machine's load weighs on all alike. Each
 * figure is the median of the rounds (15 unless CVM_BENCH_SAMPLES says).
 *
 * - `cvm --help`: starting the compiled CLI;
 * - `cvm env list` with 100 environments: one page from the server, printed;
 * - `cvm ssh dev -- true` into a running CVM, and into a standard environment;
 * - `cvm --help` from the sources through tsx, as bin/cvm ran before: the "before".
 *
 * Where the time goes: the same requests made from inside this process (no
 * process to start, no modules to load) give the server's share; the rest is
 * the CLI's own start.
 */

import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import type { CvmClient } from "../../src/client/index.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { compiledCvm } from "../../test/harness/cli.js";
import { startTestServer, type TestServer } from "../../test/harness/server.js";
import type { BenchContext, BenchResult } from "../types.js";

const rounds = Number(process.env.CVM_BENCH_SAMPLES ?? 15);
const root = join(import.meta.dirname, "..", "..");

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");

interface Run {
  /** Spawn to exit, ms. */
  wall: number;
  /** User and system CPU of the command's process, ms (10 ms resolution): what load on a shared machine moves least. */
  cpu: number;
}

/** One run of a command under /usr/bin/time; a failure is an error (the figure would mean nothing). */
function timed(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile("/usr/bin/time", ["-f", "cpu %U %S", file, ...args], { env, timeout: 60_000 }, (error, _out, stderr) => {
      const wall = performance.now() - started;
      if (error) return reject(new Error(`${[file, ...args].join(" ")} failed: ${stderr || error.message}`));
      const [user, system] = (/cpu ([\d.]+) ([\d.]+)\s*$/.exec(stderr) ?? []).slice(1).map(Number);
      resolve({ wall, cpu: ((user ?? 0) + (system ?? 0)) * 1000 });
    });
  });
}

/** `true` run through the terminal WebSocket from this process: the server's share of `cvm ssh NAME -- true`. */
function sshRoundTrip(client: CvmClient, ref: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(client.terminalUrl(ref, { command: ["true"], tty: false }), {
      headers: { authorization: `Bearer ${client.token}` },
    });
    socket.on("message", (data: Buffer, binary: boolean) => {
      if (!binary && JSON.parse(data.toString()).type === "exit") socket.close();
    });
    socket.on("close", () => resolve(performance.now() - started));
    socket.on("error", reject);
  });
}

async function waitRunning(client: CvmClient, name: string, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    const environment = await client.environment(name);
    if (environment.state === "running") return log(`${name} is running`);
    if (environment.state === "failed") throw new Error(`${name} failed: ${environment.stateReason}`);
    if (Date.now() > deadline) throw new Error(`${name} is still ${environment.state} after 10 minutes`);
    await sleep(500);
  }
}

/** Deletes the environments that have workloads, and waits until they are gone. */
async function removeAll(served: TestServer, log: (line: string) => void): Promise<void> {
  const admin = await served.firstAdmin();
  for (const name of ["dev", "plain"]) await admin.deleteEnvironment(name).catch(() => undefined);
  const deadline = Date.now() + 120_000;
  for (const name of ["dev", "plain"]) {
    while (
      await admin.environment(name).then(
        () => true,
        () => false,
      )
    ) {
      if (Date.now() > deadline) return log(`${name} was not deleted within 2 minutes`);
      await sleep(500);
    }
  }
}

interface Measured {
  name: string;
  argv: [string, ...string[]];
  times: number[];
  cpu: number[];
}

export async function run(context?: BenchContext): Promise<BenchResult[]> {
  const log = context?.log ?? ((line: string) => console.log(line));
  const cvmImage = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
  const plainImage = process.env.CVM_TEST_IMAGE_PLAIN;
  if (!cvmImage || !plainImage) throw new Error("bench/cli needs the test images: run it through `npm run bench`");
  const cvm = await compiledCvm();
  const served = await startTestServer({ cvms: true });
  const configDir = mkdtempSync(join(tmpdir(), "cvm-bench-cli-"));
  try {
    const admin = await served.firstAdmin();
    await admin.updateInfrastructure({ cvmEnabled: true, force: true });
    mkdirSync(configDir, { recursive: true });
    writeFileSync(join(configDir, "config.json"), JSON.stringify({ url: served.url, token: admin.token }));
    const env = { ...process.env, CVM_CONFIG_DIR: configDir };

    log("building the CVM dev and the standard environment plain");
    await admin.createEnvironment({ name: "dev", image: cvmImage, cvm: true, cpu: 1, memoryGiB: 1 });
    await admin.createEnvironment({ name: "plain", image: plainImage, cpu: 1, memoryGiB: 1 });
    await waitRunning(admin, "dev", log);
    await waitRunning(admin, "plain", log);
    // 98 more, so the list is the 100 of the figure: rows in the store, no workloads.
    for (let i = 0; i < 98; i++) {
      await served.server.store.environments.create(
        fixtures.environment({ owner: admin.user, name: `box-${i}`, state: "stopped", cvm: i % 2 === 0 }),
      );
    }
    const listed = await admin.listEnvironments();
    if (listed.items.length !== 100 || listed.nextCursor) throw new Error("expected one page of 100 environments");

    const node = process.execPath;
    const commands: Measured[] = [
      { name: "node -e 0", argv: [node, "-e", "0"], times: [], cpu: [] },
      { name: "cvm --help", argv: [cvm, "--help"], times: [], cpu: [] },
      { name: "cvm env list (100 environments)", argv: [cvm, "env", "list"], times: [], cpu: [] },
      { name: "cvm ssh dev -- true (a CVM)", argv: [cvm, "ssh", "dev", "--", "true"], times: [], cpu: [] },
      {
        name: "cvm ssh plain -- true (a standard environment)",
        argv: [cvm, "ssh", "plain", "--", "true"],
        times: [],
        cpu: [],
      },
      {
        name: "cvm --help from the sources through tsx (before)",
        argv: [node, "--import", "tsx", join(root, "src", "cli", "main.ts"), "--help"],
        times: [],
        cpu: [],
      },
    ];
    const inProcess = { list: [] as number[], sshCvm: [] as number[], sshPlain: [] as number[] };

    log(`measuring ${rounds} rounds; load average ${load()} on ${cpus().length} CPUs`);
    for (const command of commands) await timed(command.argv[0], command.argv.slice(1), env); // warm caches
    for (let round = 0; round < rounds; round++) {
      for (const command of commands) {
        const { wall, cpu } = await timed(command.argv[0], command.argv.slice(1), env);
        command.times.push(wall);
        command.cpu.push(cpu);
      }
      const started = performance.now();
      await admin.listEnvironments();
      inProcess.list.push(performance.now() - started);
      inProcess.sshCvm.push(await sshRoundTrip(admin, "dev"));
      inProcess.sshPlain.push(await sshRoundTrip(admin, "plain"));
    }
    log(`load average after: ${load()}`);

    const floor = median(commands[0].times);
    const figure = (i: number) => median(commands[i].times);
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    for (const command of commands) {
      log(
        `  ${command.name}: median ${median(command.times).toFixed(0)} ms, CPU ${mean(command.cpu).toFixed(0)} ms on average`,
      );
    }
    log(
      `  from inside this process: list ${median(inProcess.list).toFixed(1)} ms, ` +
        `ssh round trip ${median(inProcess.sshCvm).toFixed(0)} ms (CVM), ${median(inProcess.sshPlain).toFixed(0)} ms (standard)`,
    );

    const targets: [number, number][] = [
      [1, 150],
      [2, 300],
      [3, 400],
    ];
    const results: BenchResult[] = targets.map(([i, ms]) => {
      const value = figure(i);
      return {
        name: commands[i].name,
        value: Math.round(value),
        unit: "ms",
        baseline: `node -e 0: ${floor.toFixed(0)} ms`,
        ratio: Number((value / floor).toFixed(2)),
        target: `<= ${ms} ms and <= 4x node -e 0`,
        pass: value <= ms && value <= 4 * floor,
      };
    });
    // Figures without a target of their own: the other environment kind, the "before", and the server's shares.
    const plain = (name: string, value: number): BenchResult => ({
      name,
      value: Number(value.toFixed(1)),
      unit: "ms",
      baseline: `node -e 0: ${floor.toFixed(0)} ms`,
      ratio: Number((value / floor).toFixed(2)),
    });
    const floorCpu = mean(commands[0].cpu);
    for (const i of [1, 2, 3]) {
      results.push({
        name: `${commands[i].name}: CPU`,
        value: Math.round(mean(commands[i].cpu)),
        unit: "ms",
        baseline: `node -e 0: ${floorCpu.toFixed(0)} ms`,
        ratio: Number((mean(commands[i].cpu) / floorCpu).toFixed(2)),
      });
    }
    results.push(
      plain(commands[4].name, figure(4)),
      plain(commands[5].name, figure(5)),
      plain("env list: the request alone, from inside this process", median(inProcess.list)),
      plain("ssh dev -- true: the WebSocket round trip alone, from inside this process", median(inProcess.sshCvm)),
      plain("ssh plain -- true: the same for the standard environment", median(inProcess.sshPlain)),
    );
    return results;
  } finally {
    // Deleted before the server stops: a running CVM outlives its server (a restart adopts it).
    await removeAll(served, log).catch((error) => log(`cleaning up: ${(error as Error).message}`));
    await served.close();
    rmSync(configDir, { recursive: true, force: true });
  }
}
