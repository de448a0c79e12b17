/**
 * bench/k8s: 500 environments created through cvm's kubernetes provider on
 * kwok's simulated nodes, all reaching running, timed against creating 500
 * bare Pods through the API directly in the same run and on the same control
 * plane; and the memory of the process holding the provider at 500.
 *
 * The provider runs in its own Node process (bench/k8s/provider-load.ts), as
 * the server would, so its RSS is the provider's and not this harness's.
 */

import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { CoreV1Api, makeInformer, type V1Pod } from "@kubernetes/client-node";
import { apiClient } from "../../src/providers/kubernetes/api-client.js";
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

export async function run(context?: BenchContext): Promise<BenchResult[]> {
  const log = context?.log ?? ((line: string) => console.log(line));
  const kube = await startKube({
    log,
    nodes: Array.from({ length: 4 }, (_, i) => ({
      name: `kwok-bench-${i}`,
      kernelVersion: "5.15.0-1049-gke",
      osImage: "Ubuntu 22.04.3 LTS",
    })),
    podsPerNode: 400,
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

    const ratio = load.seconds / bareSeconds;
    return [
      {
        name: `${count} environments to running (kwok)`,
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
