/**
 * bench/cvm: what a CVM costs against a plain container of the same image on
 * the host's engine, both measured in this run on this machine, with the
 * image already present.
 *
 * (a) create-to-ready: the supervisor's whole build (create, cgroup handoff,
 *     systemd `running`, Docker answering: its socket listening, dockerd
 *     started by the first call) against `docker run -d` (create and start)
 *     of a plain container;
 * (b) memory of an idle CVM (its cgroup's usage less inactive file cache, as
 *     `docker stats` counts it) after settling, against an idle plain container;
 *     then the first `docker` call in each (it starts containerd and dockerd)
 *     against the second, and the memory again once Docker has been used;
 * (c) `docker run --rm cvm/hello echo ok` inside a CVM against the same on the
 *     host's engine, both timed around the docker CLI on their own side;
 * (d) 20 CVMs started at once, all ready, against 20 plain containers at once;
 * (e) a nested `docker run --rm --privileged` inside a CVM against a plain
 *     nested `docker run --rm`, alternating in the same CVM;
 * (f) a systemd node inside a CVM (the debian-systemd image as a privileged
 *     nested container, what kind, k3d and minikube build on), from `docker
 *     run` to `running`, against the CVM's own boot from (a);
 * (h) start of a stopped CVM to ready, against `docker start` of a stopped
 *     plain container;
 * (i, j) the warm pool's figures through a real server and the real CLI
 *     (warm-pool.ts).
 */

import { execFile } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import Dockerode from "dockerode";
import type { Environment } from "../../src/core/environment.js";
import { containerName } from "../../src/supervisor/cvm-container.js";
import { enginePaths } from "../../src/supervisor/engine.js";
import type { CvmSupervisor } from "../../src/supervisor/index.js";
import * as fixtures from "../../src/testing/fixtures.js";
import {
  buildCvm,
  cvmBuildContext,
  cvmEnvironment,
  fixtureDataDir,
  loadIntoCvm,
  shIn,
  startSupervisor,
} from "../../test/harness/cvm.js";
import type { BenchContext, BenchResult } from "../types.js";
import { warmPoolFigures } from "./warm-pool.js";

const execFileAsync = promisify(execFile);
const mib = 1024 * 1024;

const samples = Number(process.env.CVM_BENCH_SAMPLES ?? 7);
const crowd = Number(process.env.CVM_BENCH_CROWD ?? 20);
const settleMs = Number(process.env.CVM_BENCH_SETTLE_MS ?? 15_000);
const nestedImage = "cvm/hello:latest";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** A container's own cgroup directory for memory, on the node, from its PID 1's cgroup path. */
function memoryCgroup(pid: number, containerId: string): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n");
  const v1 = lines.find((line) => /^\d+:memory:/.test(line));
  const path = (v1 ?? lines.find((line) => line.startsWith("0::")) ?? "").split(":")[2] ?? "";
  const parts = path.split("/");
  const own = parts.findIndex((part) => part.includes(containerId));
  const relative = parts.slice(0, own === -1 ? parts.length : own + 1).join("/");
  return v1 ? `/sys/fs/cgroup/memory${relative}` : `/sys/fs/cgroup${relative}`;
}

/** Bytes in use less inactive file cache (what `docker stats` shows). */
function memoryInUse(dir: string): number {
  const v1 = existsSync(`${dir}/memory.usage_in_bytes`);
  const usage = Number(readFileSync(`${dir}/${v1 ? "memory.usage_in_bytes" : "memory.current"}`, "utf8"));
  const stat = readFileSync(`${dir}/memory.stat`, "utf8");
  const key = v1 ? "total_inactive_file" : "inactive_file";
  const inactive = Number(new RegExp(`^${key} (\\d+)$`, "m").exec(stat)?.[1] ?? 0);
  return usage - inactive;
}

function result(
  name: string,
  value: number,
  unit: string,
  baseline: { what: string; value: number },
  target?: { text: string; met: boolean },
): BenchResult {
  return {
    name,
    value,
    unit,
    baseline: `${baseline.what}: ${baseline.value.toFixed(unit === "MiB" ? 1 : 2)} ${unit}`,
    ratio: value / baseline.value,
    ...(target ? { target: target.text, pass: target.met } : {}),
  };
}

class PlainContainers {
  private readonly made: Dockerode.Container[] = [];
  private count = 0;
  constructor(
    private readonly docker: Dockerode,
    private readonly image: string,
  ) {}

  /** `docker run -d IMAGE sleep infinity`: create and start; resolves with the milliseconds it took. */
  async run(): Promise<{ ms: number; container: Dockerode.Container }> {
    for (let attempt = 1; ; attempt++) {
      const begun = performance.now();
      const container = await this.docker.createContainer({
        name: `cvm-bench-plain-${process.pid}-${++this.count}`,
        Image: this.image,
        Entrypoint: ["sleep", "infinity"],
        Cmd: [],
        Labels: { "dev.cvm.bench": "true" },
      });
      this.made.push(container);
      try {
        await container.start();
        return { ms: performance.now() - begun, container };
      } catch (error) {
        // Something on this shared machine has been seen deleting docker0 for a few seconds at a time.
        if (attempt >= 30 || !/could not find bridge docker0/.test(String(error))) throw error;
        await sleep(1000);
      }
    }
  }

  /** `docker stop` then `docker start`; resolves with the milliseconds the start took. */
  async restart(container: Dockerode.Container): Promise<number> {
    await container.stop({ t: 0 });
    const begun = performance.now();
    await container.start();
    return performance.now() - begun;
  }

  async removeAll(): Promise<void> {
    await Promise.all(this.made.splice(0).map((c) => c.remove({ force: true, v: true }).catch(() => undefined)));
  }
}

class Cvms {
  private readonly made: Environment[] = [];
  constructor(
    private readonly supervisor: CvmSupervisor,
    private readonly image: string,
  ) {}

  /** The supervisor's whole build; resolves with the milliseconds from create to ready, and its build log. */
  async build(): Promise<{ ms: number; environment: Environment; log: string[] }> {
    const environment = cvmEnvironment(this.image, { cpu: 1, memoryGiB: 1 });
    this.made.push(environment);
    const begun = performance.now();
    const { observation, log } = await buildCvm(this.supervisor, environment);
    const ms = performance.now() - begun;
    if (!observation.running || observation.systemd !== "running" || observation.docker !== "answering") {
      throw new Error(`CVM ${environment.id} not ready: ${JSON.stringify(observation)}\n${log.join("\n")}`);
    }
    return { ms, environment, log };
  }

  /** Stops the CVM (systemd shuts down), then starts it; resolves with the milliseconds from start to ready. */
  async restart(environment: Environment): Promise<number> {
    await this.supervisor.stop(environment, 20);
    const context = cvmBuildContext({ settings: fixtures.settings({ cvmEnabled: true, runtime: "userns" }) });
    const begun = performance.now();
    const observation = await this.supervisor.start(environment, context);
    const ms = performance.now() - begun;
    if (observation.systemd !== "running" || observation.docker !== "answering") {
      throw new Error(`CVM ${environment.id} not ready after start: ${JSON.stringify(observation)}`);
    }
    return ms;
  }

  async removeAll(): Promise<void> {
    for (const environment of this.made.splice(0)) {
      await this.supervisor.remove(environment, { keepHome: false }).catch(() => undefined);
    }
  }
}

/** Milliseconds of one `docker version` inside the CVM (client and server), timed there. */
async function dockerCallMs(supervisor: CvmSupervisor, environment: Environment): Promise<number> {
  const ran = await shIn(
    supervisor,
    environment,
    `s=$(date +%s%N); docker version -f '{{.Server.Version}}' >/dev/null || exit 1; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))`,
  );
  if (ran.code !== 0) throw new Error(`docker version failed inside the CVM: ${ran.stdout}${ran.stderr}`);
  return Number(ran.stdout.trim());
}

/** Milliseconds of one nested `docker run --rm` inside the CVM, timed there. */
async function nestedRunMs(supervisor: CvmSupervisor, environment: Environment, flags: string): Promise<number> {
  const ran = await shIn(
    supervisor,
    environment,
    `s=$(date +%s%N); out=$(docker run --rm ${flags} ${nestedImage} echo ok) || exit 1; e=$(date +%s%N); echo "$out $(( (e - s) / 1000000 ))"`,
  );
  const [ok, ms] = ran.stdout.trim().split(" ");
  if (ran.code !== 0 || ok !== "ok") throw new Error(`nested docker run ${flags} failed: ${ran.stdout}${ran.stderr}`);
  return Number(ms);
}

/**
 * Milliseconds from `docker run -d --privileged IMAGE /sbin/init` inside the
 * CVM to the nested systemd saying `running` (polled every 0.1 s).
 */
async function systemdNodeMs(supervisor: CvmSupervisor, environment: Environment, image: string): Promise<number> {
  const ran = await shIn(
    supervisor,
    environment,
    [
      "s=$(date +%s%N)",
      `docker run -d --privileged --name bench-node --tmpfs /run --tmpfs /run/lock ${image} /sbin/init > /dev/null || exit 1`,
      'for i in $(seq 1200); do st=$(docker exec bench-node systemctl is-system-running 2>/dev/null); [ "$st" = running ] && break; sleep 0.1; done',
      "e=$(date +%s%N)",
      "docker rm -f bench-node > /dev/null",
      'echo "$st $(( (e - s) / 1000000 ))"',
    ].join("\n"),
  );
  const [state, ms] = ran.stdout.trim().split(" ");
  if (state !== "running") throw new Error(`the nested systemd node did not reach running: ${ran.stdout}${ran.stderr}`);
  return Number(ms);
}

/**
 * The same run on the host's engine, of the same image from the registry
 * (pulled once, before the first sample). A run that fails is an error, not
 * a fast baseline: a host engine without the image once gave 0.02 s.
 */
async function hostNestedRunMs(hostSocket: string): Promise<number> {
  const image = process.env.CVM_TEST_IMAGE_HELLO;
  if (!image) throw new Error("CVM_TEST_IMAGE_HELLO is not set: run through `npm run bench`");
  const { stdout } = await execFileAsync("sh", [
    "-c",
    `docker -H unix://${hostSocket} image inspect ${image} >/dev/null 2>&1 || docker -H unix://${hostSocket} pull -q ${image} >/dev/null || exit 1
s=$(date +%s%N); docker -H unix://${hostSocket} run --rm ${image} echo ok >/dev/null || exit 1; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))`,
  ]);
  return Number(stdout.trim());
}

export async function run(context: BenchContext): Promise<BenchResult[]> {
  const image = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
  if (!image) throw new Error("CVM_TEST_IMAGE_SYSTEMD_DOCKER is not set: run through `npm run bench`");
  const hostSocket = process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock";
  const host = new Dockerode({ socketPath: hostSocket });
  const dataDir = fixtureDataDir("bench");
  const supervisor = await startSupervisor(dataDir);
  const engine = new Dockerode({ socketPath: enginePaths(dataDir).socket });
  const cvms = new Cvms(supervisor, image);
  const plain = new PlainContainers(host, image);
  const results: BenchResult[] = [];
  // Every figure depends on what else the machine does; say so beside them.
  const load = () =>
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} on ${cpus().length} CPUs`;
  context.log(`machine: ${load()}`);
  try {
    // Warm up: the image into both engines, page cache, the engine's first container.
    context.log("warming up: one CVM and one plain container (not counted)");
    await cvms.build();
    await plain.run();
    await cvms.removeAll();
    await plain.removeAll();

    // (a) create-to-ready, one at a time.
    const cvmTimes: number[] = [];
    const fromCreate: number[] = [];
    const plainTimes: number[] = [];
    const idle: { environment: Environment }[] = [];
    const idlePlain: Dockerode.Container[] = [];
    for (let i = 0; i < samples; i++) {
      const cvm = await cvms.build();
      cvmTimes.push(cvm.ms);
      // The supervisor's own measure from creating the container, the span `docker run -d` covers.
      const created = cvm.log.map((line) => /ready ([\d.]+) s after create/.exec(line)).find(Boolean);
      if (created) fromCreate.push(Number(created[1]) * 1000);
      idle.push(cvm);
      const container = await plain.run();
      plainTimes.push(container.ms);
      idlePlain.push(container.container);
      context.log(`(a) sample ${i + 1}: CVM ready ${seconds(cvm.ms)}, plain container ${seconds(container.ms)}`);
      writeFileSync(join(context.artifacts, `build-${i + 1}.log`), `${cvm.log.join("\n")}\n`);
    }
    const buildMs = median(cvmTimes);
    const plainMs = median(plainTimes);
    const baseline = { what: "docker run -d of the image, plain, sleep (median)", value: plainMs / 1000 };
    if (fromCreate.length === samples) {
      const readyMs = median(fromCreate);
      results.push(
        result(
          "create-to-ready: container create to systemd running, Docker's socket listening (median)",
          readyMs / 1000,
          "s",
          baseline,
          {
            text: "<= 0.8 s and <= 2.5x",
            met: readyMs <= 800 && readyMs <= 2.5 * plainMs,
          },
        ),
      );
    }
    results.push(
      result(
        "whole build: engine check, image check, create to ready (median)",
        buildMs / 1000,
        "s",
        baseline,
        fromCreate.length === samples ? undefined : { text: "<= 0.8 s", met: buildMs <= 800 },
      ),
    );

    // (b) memory of idle CVMs after settling.
    context.log(`(b) letting ${idle.length} CVMs and plain containers settle for ${settleMs / 1000} s`);
    await sleep(settleMs);
    const cvmMemory: number[] = [];
    for (const { environment } of idle) {
      const info = await engine.getContainer(containerName(environment.id)).inspect();
      cvmMemory.push(memoryInUse(memoryCgroup(info.State.Pid, info.Id)) / mib);
    }
    const plainMemory: number[] = [];
    for (const container of idlePlain) {
      const info = await container.inspect();
      plainMemory.push(memoryInUse(memoryCgroup(info.State.Pid, info.Id)) / mib);
    }
    context.log(`(b) CVMs: ${cvmMemory.map((m) => m.toFixed(1)).join(", ")} MiB`);
    const cvmMiB = median(cvmMemory);
    results.push(
      result(
        "memory per idle CVM (median)",
        cvmMiB,
        "MiB",
        { what: "idle plain container, sleep (median)", value: median(plainMemory) },
        { text: "<= 35 MiB", met: cvmMiB <= 35 },
      ),
    );

    // (b) the first docker call after ready starts the daemons; the second is the same call answered by them.
    const firstCalls: number[] = [];
    const secondCalls: number[] = [];
    for (const { environment } of idle) {
      firstCalls.push(await dockerCallMs(supervisor, environment));
      secondCalls.push(await dockerCallMs(supervisor, environment));
    }
    context.log(`(b) first docker call: ${firstCalls.join(", ")} ms; the second: ${secondCalls.join(", ")} ms`);
    results.push(
      result(
        "first docker call after ready: `docker version`, starting dockerd (median)",
        median(firstCalls) / 1000,
        "s",
        {
          what: "the same call again, dockerd running (median)",
          value: median(secondCalls) / 1000,
        },
      ),
    );
    context.log(`(b) letting the ${idle.length} CVMs settle again for ${settleMs / 1000} s, Docker running`);
    await sleep(settleMs);
    const usedMemory: number[] = [];
    for (const { environment } of idle) {
      const info = await engine.getContainer(containerName(environment.id)).inspect();
      usedMemory.push(memoryInUse(memoryCgroup(info.State.Pid, info.Id)) / mib);
    }
    context.log(`(b) CVMs, Docker used: ${usedMemory.map((m) => m.toFixed(1)).join(", ")} MiB`);
    results.push(
      result(
        "memory per idle CVM once Docker was used: containerd and dockerd running (median)",
        median(usedMemory),
        "MiB",
        {
          what: "idle plain container, sleep (median)",
          value: median(plainMemory),
        },
      ),
    );

    // (c) nested docker run, inside one of the idle CVMs, against the host's engine.
    const inside = idle[0].environment;
    const loaded = await shIn(
      supervisor,
      inside,
      `for i in $(seq 1 120); do docker image inspect ${nestedImage} >/dev/null 2>&1 && exit 0; sleep 0.5; done; exit 1`,
    );
    if (loaded.code !== 0) throw new Error(`${nestedImage} was never loaded inside the CVM: ${loaded.stderr}`);
    const nested: number[] = [];
    const onHost: number[] = [];
    for (let i = 0; i <= samples; i++) {
      const ms = await nestedRunMs(supervisor, inside, "");
      const hostMs = await hostNestedRunMs(hostSocket);
      if (i === 0) continue; // the first of each warms caches
      nested.push(Number(ms));
      onHost.push(hostMs);
      context.log(`(c) sample ${i}: inside ${ms} ms, host ${hostMs} ms`);
    }
    const nestedMs = median(nested);
    const hostMs = median(onHost);
    results.push(
      result(
        "nested docker run --rm (median)",
        nestedMs / 1000,
        "s",
        { what: "docker run --rm on the host's engine (median)", value: hostMs / 1000 },
        { text: "<= 2x the host's", met: nestedMs <= 2 * hostMs },
      ),
    );

    // (e) privileged against plain, alternating in the same CVM.
    const privileged: number[] = [];
    const unprivileged: number[] = [];
    for (let i = 0; i <= samples; i++) {
      const plainRun = await nestedRunMs(supervisor, inside, "");
      const privilegedRun = await nestedRunMs(supervisor, inside, "--privileged");
      if (i === 0) continue;
      unprivileged.push(plainRun);
      privileged.push(privilegedRun);
      context.log(`(e) sample ${i}: --privileged ${privilegedRun} ms, plain ${plainRun} ms`);
    }
    results.push(
      result("nested docker run --rm --privileged (median)", median(privileged) / 1000, "s", {
        what: "nested docker run --rm, not privileged, same CVM (median)",
        value: median(unprivileged) / 1000,
      }),
    );

    // (f) a systemd node in the CVM against the CVM's own boot.
    const systemdImage = process.env.CVM_TEST_IMAGE_SYSTEMD;
    if (systemdImage && fromCreate.length === samples) {
      await loadIntoCvm(dataDir, inside, systemdImage);
      const nodes: number[] = [];
      for (let i = 0; i <= samples; i++) {
        const ms = await systemdNodeMs(supervisor, inside, systemdImage);
        if (i === 0) continue;
        nodes.push(ms);
        context.log(`(f) sample ${i}: systemd node running ${ms} ms after docker run`);
      }
      results.push(
        result("systemd node in a CVM: docker run --privileged to running (median)", median(nodes) / 1000, "s", {
          what: "the CVM's own boot, create to running, from (a) (median)",
          value: median(fromCreate) / 1000,
        }),
      );
    } else {
      context.log("(f) skipped: CVM_TEST_IMAGE_SYSTEMD is not set or (a) had no create-to-ready figure");
    }

    // (h) start of a stopped CVM, against docker start of a stopped plain container.
    const starts: number[] = [];
    const plainStarts: number[] = [];
    for (let i = 0; i < samples; i++) {
      const cvm = idle[i % idle.length].environment;
      starts.push(await cvms.restart(cvm));
      plainStarts.push(await plain.restart(idlePlain[i % idlePlain.length]));
      context.log(
        `(h) sample ${i + 1}: CVM start to ready ${seconds(starts[i])}, plain docker start ${seconds(plainStarts[i])}`,
      );
    }
    const startMs = median(starts);
    results.push(
      result(
        "start of a stopped CVM to ready (median)",
        startMs / 1000,
        "s",
        { what: "docker start of a stopped plain container (median)", value: median(plainStarts) / 1000 },
        { text: "<= 0.8 s", met: startMs <= 800 },
      ),
    );
    await cvms.removeAll();
    await plain.removeAll();

    // (d) a crowd at once.
    context.log(`(d) ${crowd} CVMs at once`);
    const crowdBegun = performance.now();
    const built = await Promise.allSettled(Array.from({ length: crowd }, () => cvms.build()));
    const crowdMs = performance.now() - crowdBegun;
    const ready = built.filter((b) => b.status === "fulfilled").length;
    const failures = built.flatMap((b) => (b.status === "rejected" ? [String(b.reason)] : []));
    for (const failure of failures) context.log(`(d) a CVM failed: ${failure.split("\n")[0]}`);
    if (failures.length > 0) writeFileSync(join(context.artifacts, "crowd-failures.log"), failures.join("\n\n"));
    context.log(`(d) ${ready}/${crowd} CVMs ready in ${seconds(crowdMs)}; now ${crowd} plain containers at once`);
    await cvms.removeAll();
    const plainBegun = performance.now();
    await Promise.all(Array.from({ length: crowd }, () => plain.run()));
    const plainCrowdMs = performance.now() - plainBegun;
    await plain.removeAll();
    results.push(
      result(
        `${crowd} CVMs at once, all ready (${ready}/${crowd})`,
        crowdMs / 1000,
        "s",
        { what: `${crowd} plain containers at once`, value: plainCrowdMs / 1000 },
        { text: `all ${crowd} ready, <= 3x`, met: ready === crowd && crowdMs <= 3 * plainCrowdMs },
      ),
    );
    context.log(`machine: ${load()}`);

    // (i, j) warm pools, through a server and the CLI.
    if (process.env.CVM_BENCH_POOLS !== "0") {
      results.push(...(await warmPoolFigures(context, { image, samples, plainRunMs: plainMs })));
      context.log(`machine: ${load()}`);
    }
    return results;
  } finally {
    await cvms.removeAll();
    await plain.removeAll();
    await supervisor.close();
  }
}
