/**
 * bench/k8s on the real node (test/harness/kube-node.ts): create to running
 * of one CVM through `cvm server --provider kubernetes`, against a bare Pod of
 * the same image on the same node, in the same run. Both images are on the
 * node beforehand (the supervisor's and the CVM's, pulled into its
 * containerd), so neither figure is a registry's speed; the CVM's image is
 * still pulled again by the supervisor's own engine in every new Pod, which
 * is part of a CVM's start today and shows in the breakdown.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { pino } from "pino";
import { buildImages } from "../../images/build.js";
import { CvmClient } from "../../src/client/index.js";
import { startServer } from "../../src/server/index.js";
import { createTestNamespace, realKubeUnavailable, startKube } from "../../test/harness/kube.js";
import type { BenchResult } from "../types.js";

const runs = Number(process.env.CVM_BENCH_K8S_NODE_RUNS ?? 3);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];

export interface RealNodeFigures {
  results: BenchResult[];
  /** Where a CVM's seconds went, from its build log (median of each step). */
  steps: Record<string, number>;
}

function barePod(name: string, image: string): V1Pod {
  return {
    metadata: { name, labels: { bench: "bare" } },
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: "main",
          image,
          command: ["sleep", "infinity"],
          resources: { requests: { cpu: "1", memory: "2Gi" }, limits: { cpu: "1", memory: "2Gi" } },
          readinessProbe: { exec: { command: ["true"] }, periodSeconds: 1 },
        },
      ],
    },
  };
}

/** The build log's steps, as seconds since the build's first line: what the time went on. */
const milestones: [string, RegExp][] = [
  ["Pod created", /^created Pod /],
  ["supervisor started", /^supervisor started on node/],
  ["engine answering", /^engine: /],
  ["image pulled", /^pull: .* (pulled from its registry|already in cvm's engine)/],
  ["container created", /^create: /],
  ["systemd running", /^systemd: running/],
  ["running", /state: starting → running/],
];

export async function realNodeFigures(log: (line: string) => void): Promise<RealNodeFigures | string> {
  const why = realKubeUnavailable();
  if (why) return why;
  const images = await buildImages({ names: ["supervisor", "debian-systemd-docker"], log: (l) => log(`images: ${l}`) });
  const kube = await startKube({ realNode: true, log });
  const node = kube.node;
  if (!node) throw new Error("no real node");
  const forPods = (name: string) =>
    (images.find((i) => i.name === name)?.reference ?? "").replace(/^[^/]+/, node.registry);
  const supervisorImage = forPods("supervisor");
  const cvmImage = forPods("debian-systemd-docker");
  const dataDir = mkdtempSync("/tmp/cvm-bench-node-");
  try {
    for (const image of [supervisorImage, cvmImage]) await node.ctr(["images", "pull", "--plain-http", image]);
    const namespace = "bench-node";
    await createTestNamespace(kube, namespace, { "pod-security.kubernetes.io/enforce": "privileged" });
    const core = kube.config().makeApiClient(CoreV1Api);

    const bare: number[] = [];
    for (let i = 0; i < runs; i++) {
      const name = `bare-${i}`;
      const begun = performance.now();
      await core.createNamespacedPod({ namespace, body: barePod(name, cvmImage) });
      for (;;) {
        const pod = await core.readNamespacedPod({ name, namespace });
        if (pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) break;
        await sleep(50);
      }
      bare.push((performance.now() - begun) / 1000);
      await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
      log(`bare Pod ${i + 1}/${runs}: ready in ${bare.at(-1)?.toFixed(2)} s`);
    }

    Object.assign(process.env, {
      CVM_SUPERVISOR_IMAGE: supervisorImage,
      CVM_INSECURE_REGISTRIES: node.registry,
    });
    const server = await startServer({
      listen: `${node.address}:0`,
      dataDir,
      provider: "kubernetes",
      kubeconfig: kube.kubeconfig,
      namespace,
      logger: pino({ level: "warn" }),
      webRoot: join(dataDir, "no-dashboard"),
    });
    process.env.CVM_SUPERVISOR_REPORT_URL = server.url;
    const cvm: number[] = [];
    const steps: Record<string, number[]> = {};
    try {
      const admin = new CvmClient({ baseUrl: server.url });
      admin.token = (
        await admin.createFirstAdmin({
          setupCode: server.setupCode ?? "",
          email: "bench@example.com",
          password: "correct horse battery",
        })
      ).token;
      await admin.updateInfrastructure({ cvmEnabled: true, force: true });
      for (let i = 0; i < runs; i++) {
        const begun = performance.now();
        const created = await admin.createEnvironment({
          name: `cvm-${i}`,
          image: cvmImage,
          cvm: true,
          cpu: 1,
          memoryGiB: 2,
        });
        for (;;) {
          const environment = await admin.environment(created.id);
          if (environment.state === "running") break;
          if (environment.state === "failed") throw new Error(`the CVM failed: ${environment.stateReason}`);
          await sleep(50);
        }
        cvm.push((performance.now() - begun) / 1000);
        const lines: { at: string; text: string }[] = [];
        for await (const line of admin.logs(created.id)) if (!("end" in line)) lines.push(line);
        const first = Date.parse(lines[0]?.at ?? "");
        for (const [step, pattern] of milestones) {
          const line = lines.find((l) => pattern.test(l.text));
          if (line) steps[step] = [...(steps[step] ?? []), (Date.parse(line.at) - first) / 1000];
        }
        log(`CVM ${i + 1}/${runs}: running in ${cvm.at(-1)?.toFixed(2)} s`);
        await admin.deleteEnvironment(created.id);
      }
    } finally {
      await server.close();
    }
    const bareMedian = median(bare);
    const cvmMedian = median(cvm);
    return {
      results: [
        {
          name: "one CVM created to running on the real node (systemd running, Docker answering), median",
          value: cvmMedian,
          unit: "s",
          baseline: `a bare Pod of the same image on the same node, to Ready: ${bareMedian.toFixed(2)} s`,
          ratio: cvmMedian / bareMedian,
        },
      ],
      steps: Object.fromEntries(Object.entries(steps).map(([step, values]) => [step, median(values)])),
    };
  } finally {
    await kube.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
