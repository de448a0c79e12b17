/**
 * bench/k8s: 500 environments created through cvm's kubernetes provider on
 * kwok's simulated nodes, all reaching running, timed against creating 500
 * bare Pods through the API directly in the same run and on the same control
 * plane; and the memory of the process holding the provider at 500.
 *
 * The provider runs in its own Node process (bench/k8s/provider-load.ts), as
 * the server would, so its RSS is the provider's and not this harness's.
 */

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { CoreV1Api, makeInformer, type V1Pod } from "@kubernetes/client-node";
import { CvmClient, collectPages } from "../../src/client/index.js";
import { apiClient } from "../../src/kubernetes/index.js";
import { createTestNamespace, startKube } from "../../test/harness/kube.js";
import type { BenchContext, BenchResult } from "../types.js";

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

export async function run(context?: BenchContext): Promise<BenchResult[]> {
  const log = context?.log ?? ((line: string) => console.log(line));
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
    await createTestNamespace(kube, "bench-bare");
    await createTestNamespace(kube, "bench-claims");
    await createTestNamespace(kube, "bench-cvm", { "pod-security.kubernetes.io/enforce": "privileged" });

    log(`creating ${count} bare Pods through the API`);
    const bareSeconds = await bareAllRunning(kube, "bench-bare");
    log(`bare Pods: all ${count} running in ${bareSeconds.toFixed(1)} s`);

    log(`creating ${count} bare Pods, each with its own claim, through the API`);
    const claimsSeconds = await bareAllRunning(kube, "bench-claims", true);
    log(`bare Pods with claims: all ${count} running in ${claimsSeconds.toFixed(1)} s`);

    log(`creating ${count} environments through cvm's kubernetes provider`);
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

    await createTestNamespace(kube, "bench-server", { "pod-security.kubernetes.io/enforce": "privileged" });
    log(`creating ${count} environments through a cvm server (--provider kubernetes) over its API`);
    const served = await serverLoad(kube, "bench-server", context?.artifacts ?? tmpdir());
    log(
      `cvm server: ${served.running} of ${count} running in ${served.seconds.toFixed(1)} s; server RSS ${served.rssMiB.toFixed(0)} MiB`,
    );
    if (served.running !== count) throw new Error(`only ${served.running} of ${count} environments reached running`);

    const ratio = load.seconds / bareSeconds;
    const serverRatio = served.seconds / bareSeconds;
    return [
      {
        name: `${count} environments through cvm server to running (kwok)`,
        value: served.seconds,
        unit: "s",
        baseline: `${count} bare Pods through the API: ${bareSeconds.toFixed(1)} s`,
        ratio: serverRatio,
        target: "<= 2x bare Pods",
        pass: serverRatio <= 2,
      },
      {
        name: `${count} environments through cvm server vs Pods with claims`,
        value: served.seconds,
        unit: "s",
        baseline: `${count} bare Pods with a claim each: ${claimsSeconds.toFixed(1)} s`,
        ratio: served.seconds / claimsSeconds,
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
        target: "<= 2x bare Pods",
        pass: ratio <= 2,
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
