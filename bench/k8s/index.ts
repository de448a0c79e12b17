/**
 * bench/k8s: 500 environments created through cvm's kubernetes provider on
 * kwok's simulated nodes, all reaching running, timed against creating 500
 * bare Pods through the API directly in the same run and on the same control
 * plane; and the memory of the process holding the provider at 500. Then one
 * CVM on a real node against a bare Pod of its image (real-node.ts).
 *
 * Each part starts on an emptied cluster (emptyCluster), so no part pays for
 * the Pods, claims and volumes of the one before.
 *
 * The provider runs in its own Node process (bench/k8s/provider-load.ts), as
 * the server would, so its RSS is the provider's and not this harness's.
 */

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { CoreV1Api, makeInformer, type V1Pod } from "@kubernetes/client-node";
import { CvmClient, collectPages } from "../../src/client/index.js";
import { apiClient } from "../../src/kubernetes/index.js";
import { createTestNamespace, startKube } from "../../test/harness/kube.js";
import type { BenchContext, BenchResult } from "../types.js";
import { realNodeFigures } from "./real-node.js";

const execFileAsync = promisify(execFile);
const count = Number(process.env.CVM_BENCH_K8S_COUNT ?? 500);
/** The same cap on requests in flight the provider keeps. */
const concurrency = 32;

export interface ProviderLoadResult {
  seconds: number;
  rssMiB: number;
  running: number;
}

async function inBatches<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++]);
    }),
  );
}

function bare(name: string, claim?: string): V1Pod {
  return {
    metadata: { name, labels: { bench: "bare" } },
    spec: {
      automountServiceAccountToken: false,
      containers: [{ name: "main", image: "registry.k8s.io/pause:3.9", resources: { requests: { cpu: "10m" } } }],
      ...(claim ? { volumes: [{ name: "home", persistentVolumeClaim: { claimName: claim } }] } : {}),
    },
  };
}

/** Seconds from the first create until every Pod is Running and Ready, watched rather than polled. */
async function bareAllRunning(
  kube: Awaited<ReturnType<typeof startKube>>,
  namespace: string,
  withClaims = false,
): Promise<number> {
  const config = kube.config();
  // The same keep-alive client the provider uses, so the comparison is of the work, not of TLS handshakes.
  const core = apiClient(config, CoreV1Api);
  const informer = makeInformer(config, `/api/v1/namespaces/${namespace}/pods`, () =>
    core.listNamespacedPod({ namespace }),
  );
  const ready = new Set<string>();
  let resolveAll: () => void = () => {};
  const all = new Promise<void>((resolve) => {
    resolveAll = resolve;
  });
  const onChange = (pod: V1Pod) => {
    if (pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) {
      ready.add(pod.metadata?.name ?? "");
      if (ready.size >= count) resolveAll();
    }
  };
  informer.on("add", onChange);
  informer.on("update", onChange);
  await informer.start();
  const begun = performance.now();
  await inBatches(
    Array.from({ length: count }, (_, i) => `bare-${i}`),
    concurrency,
    async (name) => {
      if (withClaims) {
        await core.createNamespacedPersistentVolumeClaim({
          namespace,
          body: {
            metadata: { name },
            spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
          },
        });
      }
      await core.createNamespacedPod({ namespace, body: bare(name, withClaims ? name : undefined) });
    },
  );
  await all;
  const seconds = (performance.now() - begun) / 1000;
  await informer.stop();
  return seconds;
}

/**
 * Deletes a part's namespace and waits until it, its Pods and the volumes its
 * claims were given are gone: each part starts on the same empty cluster, so
 * a later part does not pay for the objects of an earlier one.
 */
async function emptyCluster(
  kube: Awaited<ReturnType<typeof startKube>>,
  namespace: string,
  log: (line: string) => void,
): Promise<void> {
  const core = apiClient(kube.config(), CoreV1Api);
  const begun = performance.now();
  await core.deleteNamespace({ name: namespace });
  const deadline = Date.now() + 10 * 60_000;
  while (Date.now() < deadline) {
    const gone = await core.readNamespace({ name: namespace }).then(
      () => false,
      () => true,
    );
    const volumes = (await core.listPersistentVolume()).items.length;
    if (gone && volumes === 0) {
      log(`emptied ${namespace} in ${((performance.now() - begun) / 1000).toFixed(1)} s`);
      return;
    }
    await sleep(1000);
  }
  throw new Error(`namespace ${namespace} and its volumes were not gone within 10 minutes`);
}

/** The RSS of a process, from the kernel's own accounting. */
function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/**
 * The same through a real `cvm server --provider kubernetes` process: N
 * creates through the API, all reaching running, and the server's RSS then.
 */
async function serverLoad(
  kube: Awaited<ReturnType<typeof startKube>>,
  namespace: string,
  artifacts: string,
): Promise<ProviderLoadResult> {
  const port = 17000 + (process.pid % 1000);
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-bench-k8s-"));
  // The server takes its first-run setup code from here, so the bench need not read its log.
  const setupCode = randomBytes(9).toString("base64url");
  const server = spawn(
    join(import.meta.dirname, "..", "..", "bin", "cvm"),
    [
      "server",
      "--provider",
      "kubernetes",
      "--kubeconfig",
      kube.kubeconfig,
      "--namespace",
      namespace,
      "--listen",
      `127.0.0.1:${port}`,
      "--data-dir",
      dataDir,
      "--log-level",
      "warn",
    ],
    {
      env: { ...process.env, CVM_SETUP_CODE: setupCode },
      stdio: [
        "ignore",
        openSync(join(artifacts, "cvm-server.log"), "a"),
        openSync(join(artifacts, "cvm-server.log"), "a"),
      ],
    },
  );
  try {
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    while (
      !(await fetch(`${url}/healthz`)
        .then((r) => r.ok)
        .catch(() => false))
    ) {
      if (Date.now() > deadline || server.exitCode !== null)
        throw new Error("cvm server did not start (see cvm-server.log)");
      await sleep(200);
    }
    const admin = new CvmClient({ baseUrl: url });
    admin.token = (
      await admin.createFirstAdmin({
        email: "bench@example.com",
        password: "correct horse battery",
        setupCode,
      })
    ).token;
    await admin.updateInfrastructure({ cvmEnabled: true, force: true });
    const begun = performance.now();
    await inBatches(
      Array.from({ length: count }, (_, i) => i),
      concurrency,
      async (i) => {
        await admin.createEnvironment({
          name: `bench-${i}`,
          image: "debian:12",
          cvm: true,
          cpu: 0.25,
          memoryGiB: 0.25,
          diskGiB: 1,
        });
      },
    );
    // The bench asks once a second how many run; the server itself watches, never polls.
    let running = 0;
    while (running < count && performance.now() - begun < 20 * 60_000) {
      // Lists come a page at a time; 500 is the largest page.
      const every = (state: "running" | "failed") =>
        collectPages((page) => admin.listEnvironments({ state, owner: "me", ...page }), { pageSize: 500 });
      running = (await every("running")).length;
      const failed = await every("failed");
      if (failed.length > 0) throw new Error(`${failed.length} environments failed; first: ${failed[0].stateReason}`);
      if (running < count) await sleep(1000);
    }
    const seconds = (performance.now() - begun) / 1000;
    return { seconds, rssMiB: rssMiB(server.pid ?? 0), running };
  } finally {
    server.kill("SIGTERM");
    await new Promise((resolve) => server.once("exit", resolve));
  }
}

/**
 * Both parts, or the one CVM_BENCH_K8S names (`kwok`: 500 environments on
 * kwok's nodes; `real-node`: one CVM against a bare Pod on a real node).
 */
export async function run(context?: BenchContext): Promise<BenchResult[]> {
  const log = context?.log ?? ((line: string) => console.log(line));
  const part = process.env.CVM_BENCH_K8S ?? "all";
  log(
    `load average at the start: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  const results: BenchResult[] = [];
  if (part !== "real-node") results.push(...(await kwokFigures(log, context)));
  if (part !== "kwok") {
    const figures = await realNodeFigures(log);
    if (typeof figures === "string") log(`real node: not measured (${figures})`);
    else {
      log(`real node: a CVM's build, seconds since its first log line (median): ${JSON.stringify(figures.steps)}`);
      results.push(...figures.results);
    }
  }
  return results;
}

async function kwokFigures(log: (line: string) => void, context?: BenchContext): Promise<BenchResult[]> {
  const kube = await startKube({
    log,
    nodes: Array.from({ length: 4 }, (_, i) => ({
      name: `kwok-bench-${i}`,
      kernelVersion: "5.15.0-1049-gke",
      osImage: "Ubuntu 22.04.3 LTS",
    })),
    // Room for every Pod the bench makes: bare, bare with claims, provider, server (4 x 500).
    podsPerNode: 700,
  });
  try {
    log(`creating ${count} bare Pods through the API`);
    await createTestNamespace(kube, "bench-bare");
    const bareSeconds = await bareAllRunning(kube, "bench-bare");
    log(`bare Pods: all ${count} running in ${bareSeconds.toFixed(1)} s`);
    await emptyCluster(kube, "bench-bare", log);

    log(`creating ${count} bare Pods, each with its own claim, through the API`);
    await createTestNamespace(kube, "bench-claims");
    const claimsSeconds = await bareAllRunning(kube, "bench-claims", true);
    log(`bare Pods with claims: all ${count} running in ${claimsSeconds.toFixed(1)} s`);
    await emptyCluster(kube, "bench-claims", log);

    log(`creating ${count} environments through cvm's kubernetes provider`);
    await createTestNamespace(kube, "bench-cvm", { "pod-security.kubernetes.io/enforce": "privileged" });
    const { stdout, stderr } = await execFileAsync(
      process.execPath,
      ["--import", "tsx", join(import.meta.dirname, "provider-load.ts"), kube.kubeconfig, "bench-cvm", String(count)],
      { maxBuffer: 16 * 1024 * 1024, timeout: 30 * 60 * 1000 },
    );
    for (const line of stderr.trim().split("\n").filter(Boolean)) log(`provider: ${line}`);
    const load = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as ProviderLoadResult;
    log(
      `cvm: ${load.running} of ${count} running in ${load.seconds.toFixed(1)} s; provider process RSS ${load.rssMiB.toFixed(0)} MiB`,
    );
    if (load.running !== count) throw new Error(`only ${load.running} of ${count} environments reached running`);
    await emptyCluster(kube, "bench-cvm", log);

    await createTestNamespace(kube, "bench-server", { "pod-security.kubernetes.io/enforce": "privileged" });
    log(`creating ${count} environments through a cvm server (--provider kubernetes) over its API`);
    const served = await serverLoad(kube, "bench-server", context?.artifacts ?? tmpdir());
    log(
      `cvm server: ${served.running} of ${count} running in ${served.seconds.toFixed(1)} s; server RSS ${served.rssMiB.toFixed(0)} MiB`,
    );
    if (served.running !== count) throw new Error(`only ${served.running} of ${count} environments reached running`);

    const ratio = load.seconds / bareSeconds;
    const serverRatio = served.seconds / bareSeconds;
    // Where the time goes, each step the difference to the one before it.
    log(
      `where the time goes: Pods ${bareSeconds.toFixed(1)} s; + a claim each ${(claimsSeconds - bareSeconds).toFixed(1)} s; + cvm's provider ${(load.seconds - claimsSeconds).toFixed(1)} s; + the server's API and store ${(served.seconds - load.seconds).toFixed(1)} s`,
    );
    log(
      `load average after the kwok part: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
    );
    return [
      {
        // The fair baseline (issue 10): a CVM needs its home, so each bare Pod has a claim too.
        name: `${count} environments through cvm server to running, vs Pods with claims (kwok)`,
        value: served.seconds,
        unit: "s",
        baseline: `${count} bare Pods with a claim each: ${claimsSeconds.toFixed(1)} s`,
        ratio: served.seconds / claimsSeconds,
        target: "<= 1.3x Pods with claims",
        pass: served.seconds / claimsSeconds <= 1.3,
      },
      {
        name: `${count} environments through cvm server vs bare Pods`,
        value: served.seconds,
        unit: "s",
        baseline: `${count} bare Pods through the API: ${bareSeconds.toFixed(1)} s`,
        ratio: serverRatio,
      },
      {
        name: `cvm server RSS at ${count} environments`,
        value: served.rssMiB,
        unit: "MiB",
        baseline: "300 MiB target",
        ratio: served.rssMiB / 300,
        target: "< 300 MiB",
        pass: served.rssMiB < 300,
      },
      {
        name: `${count} environments through the provider alone to running (kwok)`,
        value: load.seconds,
        unit: "s",
        baseline: `${count} bare Pods through the API: ${bareSeconds.toFixed(1)} s`,
        ratio,
      },
      {
        // Each environment has its home claim; this isolates cvm's own cost from the cluster's storage pipeline.
        name: `${count} environments vs Pods with claims`,
        value: load.seconds,
        unit: "s",
        baseline: `${count} bare Pods with a claim each: ${claimsSeconds.toFixed(1)} s`,
        ratio: load.seconds / claimsSeconds,
      },
      {
        name: `provider process RSS at ${count} environments`,
        value: load.rssMiB,
        unit: "MiB",
        baseline: "300 MiB target",
        ratio: load.rssMiB / 300,
        target: "< 300 MiB",
        pass: load.rssMiB < 300,
      },
    ];
  } finally {
    await kube.stop();
  }
}
