/**
 * A real Kubernetes control plane for the tests, as envtest starts one for
 * operators: etcd (Debian's), kube-apiserver, kube-controller-manager and
 * kube-scheduler built with Go from the pinned `k8s.io/kubernetes` release,
 * and kwok simulating nodes and Pod lifecycles. With `realNode`, a real node
 * joins it (kube-node.ts: containerd, kubelet, kube-proxy), and no fake
 * nodes unless asked for. Everything listens on loopback (on the node's
 * address too, with a real node); certificates are made with openssl per
 * start; the binaries live in the machine cache and are built once per
 * machine (per pinned version).
 *
 * The admission chain is the release's default one (PodSecurity included),
 * with privileged containers allowed cluster-wide, as on GKE, EKS and AKS.
 */

import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { CoreV1Api, KubeConfig, StorageV1Api, type V1Node } from "@kubernetes/client-node";
import { nodeAddress, type RealNode, realNodeUnavailable, startRealNode } from "./kube-node.js";
import { kubeconfigText, makeCertificates } from "./kube-pki.js";
import { freePort } from "./ports.js";
import { type Proc, startProcess, stopProcess, waitUntil } from "./processes.js";
import { machineCache } from "./services.js";

const run = promisify(execFile);

/** The pinned releases; changing one rebuilds that binary once on every machine. */
export const kubeRelease = "v1.30.14";
export const kwokRelease = "v0.7.0";
export const helmRelease = "v3.19.0";

export const kubeCache = join(machineCache, "k8s");
export const kubeBin = join(kubeCache, "bin");
const buildScript = join(import.meta.dirname, "kube-build", "build.sh");

interface BinarySource {
  module: string;
  version: string;
  packages: string[];
}

/** Which Go module builds which command. */
const sources: Record<string, BinarySource> = {
  "kube-apiserver": kubernetes(),
  "kube-controller-manager": kubernetes(),
  "kube-scheduler": kubernetes(),
  kubelet: kubernetes(),
  "kube-proxy": kubernetes(),
  kwok: { module: "kwok", version: kwokRelease, packages: ["sigs.k8s.io/kwok/cmd/kwok"] },
  helm: { module: "helm", version: helmRelease, packages: ["helm.sh/helm/v3/cmd/helm"] },
};

/** The control plane and the node's commands: one module, one build (a missing one builds all five). */
function kubernetes(): BinarySource {
  return {
    module: "kubernetes",
    version: kubeRelease,
    packages: ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"].map(
      (c) => `k8s.io/kubernetes/cmd/${c}`,
    ),
  };
}

export type KubeBinary = keyof typeof sources;

export function binaryPath(name: KubeBinary): string {
  return join(kubeBin, name);
}

/** Whether the cached binary exists and was built from the pinned version. */
export function binaryReady(name: KubeBinary): boolean {
  const stamp = `${binaryPath(name)}.version`;
  return (
    existsSync(binaryPath(name)) && existsSync(stamp) && readFileSync(stamp, "utf8").trim() === sources[name].version
  );
}

/** Why the k8s tests cannot run on this machine, or undefined when they can (binaries built or buildable). */
export function kubeUnavailable(): string | undefined {
  if (!existsSync("/usr/bin/etcd")) return "etcd is not installed (apt-get install etcd-server)";
  if (!existsSync(process.env.GO ?? "/usr/local/go/bin/go")) {
    const missing = Object.keys(sources).filter((n) => !binaryReady(n as KubeBinary));
    if (missing.length > 0) return `no Go toolchain to build ${missing.join(", ")} (set GO or install Go)`;
  }
  return undefined;
}

/**
 * How long a k8s suite may take: minutes once the binaries are cached; on a
 * fresh machine the first suite builds them (tens of minutes on 2 cores).
 */
export function kubeSuiteTimeoutMs(names: KubeBinary[] = ["kube-apiserver", "kwok"]): number {
  return names.every(binaryReady) ? 10 * 60_000 : 3 * 3600_000;
}

const building = new Map<string, Promise<void>>();

/**
 * Builds each missing binary with Go into the machine cache (minutes on a
 * fresh machine; nothing once built). Concurrent callers share one build.
 */
export async function ensureKubeBinaries(
  names: KubeBinary[],
  log = (line: string) => console.log(line),
): Promise<void> {
  for (const name of names) {
    if (binaryReady(name)) continue;
    const source = sources[name];
    const key = `${source.module}@${source.version}`;
    let pending = building.get(key);
    if (!pending) {
      log(
        `kube harness: building ${source.packages.join(" ")} ${source.version} with Go into ${kubeBin} (once per machine; takes minutes)`,
      );
      const begun = Date.now();
      pending = run(buildScript, [source.module, source.version, ...source.packages], {
        env: { ...process.env, CVM_K8S_CACHE: kubeCache },
        maxBuffer: 64 * 1024 * 1024,
      }).then(
        () => log(`kube harness: built ${key} in ${Math.round((Date.now() - begun) / 1000)} s`),
        (error: { stderr?: string; message: string }) => {
          throw new Error(`building ${key} failed: ${(error.stderr ?? error.message).slice(-4000)}`);
        },
      );
      building.set(key, pending);
    }
    await pending;
  }
}

export interface FakeNode {
  name: string;
  kernelVersion: string;
  osImage: string;
}

export const defaultFakeNodes: FakeNode[] = [
  { name: "kwok-node-0", kernelVersion: "5.15.0-1049-gke", osImage: "Ubuntu 22.04.3 LTS" },
  { name: "kwok-node-1", kernelVersion: "5.15.0-1049-gke", osImage: "Ubuntu 22.04.3 LTS" },
];

export interface KubeOptions {
  /** kwok's fake nodes; none by default with a real node. */
  nodes?: FakeNode[];
  /** A real node as well (kube-node.ts): containerd, kubelet and kube-proxy on this machine. */
  realNode?: boolean;
  /** Allocatable pods per fake node (the bench needs many). */
  podsPerNode?: number;
  log?: (line: string) => void;
}

export interface Kube {
  /** A kubeconfig file for a cluster admin (system:masters). */
  kubeconfig: string;
  /** The API server's URL (https://127.0.0.1:port). */
  server: string;
  /** The CA that signed the API server's certificate (PEM file). */
  caFile: string;
  /** The StorageClass that provisions claims (the controller manager's hostPath provisioner); the default class. */
  storageClass: string;
  /** A KubeConfig for the admin, ready for API clients. */
  config(): KubeConfig;
  /** A kubeconfig file that authenticates with a bearer token (a service account's, say). */
  kubeconfigForToken(token: string, name: string): string;
  /** Where each process writes its log. */
  logDir: string;
  /** The real node, when asked for. */
  node?: RealNode;
  stop(): Promise<void>;
}

/** Why a real node cannot join here, or undefined when it can. */
export function realKubeUnavailable(): string | undefined {
  return kubeUnavailable() ?? realNodeUnavailable();
}

function fakeNode(node: FakeNode, pods: number): V1Node {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: node.name,
      // kwok manages exactly the nodes carrying this annotation.
      annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        type: "kwok",
      },
    },
    spec: {},
    status: {
      allocatable: { cpu: "64", memory: "256Gi", pods: String(pods) },
      capacity: { cpu: "64", memory: "256Gi", pods: String(pods) },
      nodeInfo: {
        architecture: "amd64",
        bootID: "",
        containerRuntimeVersion: "containerd://1.7.12",
        kernelVersion: node.kernelVersion,
        kubeProxyVersion: kubeRelease,
        kubeletVersion: kubeRelease,
        machineID: "",
        operatingSystem: "linux",
        osImage: node.osImage,
        systemUUID: "",
      },
    },
  };
}

/** Starts etcd, the control plane and kwok with fake nodes; resolves once a Pod can be scheduled and run. */
export async function startKube(options: KubeOptions = {}): Promise<Kube> {
  const log = options.log ?? ((line: string) => console.log(line));
  const why = kubeUnavailable();
  if (why) throw new Error(`cannot start a Kubernetes control plane: ${why}`);
  await ensureKubeBinaries(
    [
      "kube-apiserver",
      "kube-controller-manager",
      "kube-scheduler",
      "kwok",
      ...(options.realNode ? (["kubelet", "kube-proxy"] as const) : []),
    ],
    log,
  );
  // A real node's Pods reach the API server (through the kubernetes Service) at the node's address.
  const address = options.realNode ? await nodeAddress() : "127.0.0.1";

  const artifacts = process.env.CVM_TEST_ARTIFACTS ?? join(import.meta.dirname, "..", "..", "artifacts");
  mkdirSync(join(artifacts, "kube"), { recursive: true });
  const logDir = mkdtempSync(join(artifacts, "kube", "run-"));
  // etcd on tmpfs: Debian's etcd 3.4 cannot skip fsync, and the disk is shared.
  const etcdDir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : "/tmp", "cvm-etcd-"));
  const dir = mkdtempSync(join("/tmp", "cvm-kube-"));
  const procs: Proc[] = [];
  let node: RealNode | undefined;
  // A test process that dies (a timeout, ^C) takes its control plane with it (and the next real node cleans up after it).
  const killAll = () => {
    for (const { child } of procs) if (child.exitCode === null) child.kill("SIGKILL");
  };
  process.once("exit", killAll);
  const stop = async () => {
    process.off("exit", killAll);
    if (node) {
      // No Pod may be made or placed again while the node's are deleted (a Deployment's would).
      for (const proc of procs.filter((p) => ["kube-scheduler", "kube-controller-manager"].includes(p.name))) {
        await stopProcess(proc);
      }
      await node.stop();
    }
    for (const proc of [...procs].reverse()) await stopProcess(proc);
    rmSync(etcdDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await makeCertificates(dir, address === "127.0.0.1" ? [] : [address]);
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    procs.push(
      startProcess(
        "etcd",
        "/usr/bin/etcd",
        [
          `--data-dir=${etcdDir}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=default=${peerUrl}`,
          "--log-level=warn",
          "--logger=zap",
        ],
        logDir,
      ),
    );
    await waitUntil("etcd", procs, async () => (await fetch(`${etcdUrl}/health`)).ok, 30_000, logDir);

    const server = `https://${address}:${apiPort}`;
    procs.push(
      startProcess(
        "kube-apiserver",
        binaryPath("kube-apiserver"),
        [
          `--etcd-servers=${etcdUrl}`,
          `--bind-address=${address}`,
          `--advertise-address=${address}`,
          `--secure-port=${apiPort}`,
          `--cert-dir=${dir}`,
          `--tls-cert-file=${join(dir, "apiserver.crt")}`,
          `--tls-private-key-file=${join(dir, "apiserver.key")}`,
          `--client-ca-file=${join(dir, "ca.crt")}`,
          `--service-account-key-file=${join(dir, "sa.pub")}`,
          `--service-account-signing-key-file=${join(dir, "sa.key")}`,
          "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
          "--service-cluster-ip-range=10.0.0.0/24",
          "--authorization-mode=Node,RBAC",
          `--kubelet-client-certificate=${join(dir, "apiserver-kubelet.crt")}`,
          `--kubelet-client-key=${join(dir, "apiserver-kubelet.key")}`,
          // The real node's name resolves nowhere; its address does.
          "--kubelet-preferred-address-types=InternalIP,Hostname",
          // The default admission chain (PodSecurity, ServiceAccount, LimitRanger, ...), privileged allowed.
          "--allow-privileged=true",
          // A real node's Pods use the kubernetes Service, whose endpoint is this server (not on loopback).
          `--endpoint-reconciler-type=${options.realNode ? "lease" : "none"}`,
          "--v=1",
        ],
        logDir,
      ),
    );
    const adminKubeconfig = join(dir, "admin.kubeconfig");
    writeFileSync(adminKubeconfig, kubeconfigText(server, dir, { cert: "admin.crt", key: "admin.key" }));
    const config = () => {
      const kc = new KubeConfig();
      kc.loadFromFile(adminKubeconfig);
      return kc;
    };
    const core = config().makeApiClient(CoreV1Api);
    await waitUntil(
      "kube-apiserver",
      procs,
      async () => {
        await core.readNamespace({ name: "default" });
        return true;
      },
      120_000,
      logDir,
    );

    procs.push(
      startProcess(
        "kube-controller-manager",
        binaryPath("kube-controller-manager"),
        [
          `--kubeconfig=${adminKubeconfig}`,
          "--leader-elect=false",
          "--secure-port=0",
          `--service-account-private-key-file=${join(dir, "sa.key")}`,
          `--root-ca-file=${join(dir, "ca.crt")}`,
          // Claims get real volumes: the testing provisioner makes hostPath volumes.
          "--enable-hostpath-provisioner",
          "--kube-api-qps=500",
          "--kube-api-burst=1000",
          "--concurrent-serviceaccount-token-syncs=2",
          "--v=1",
        ],
        logDir,
      ),
      startProcess(
        "kube-scheduler",
        binaryPath("kube-scheduler"),
        [
          `--kubeconfig=${adminKubeconfig}`,
          `--authentication-kubeconfig=${adminKubeconfig}`,
          `--authorization-kubeconfig=${adminKubeconfig}`,
          "--leader-elect=false",
          "--bind-address=127.0.0.1",
          `--secure-port=${await freePort()}`,
          "--kube-api-qps=500",
          "--kube-api-burst=1000",
          "--v=1",
        ],
        logDir,
      ),
      startProcess(
        "kwok",
        binaryPath("kwok"),
        [
          `--kubeconfig=${adminKubeconfig}`,
          "--manage-all-nodes=false",
          "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
          "--node-ip=10.0.1.1",
          "--node-lease-duration-seconds=40",
          "--cidr=10.244.0.0/16",
        ],
        logDir,
      ),
    );

    const storageClass = "cvm-test-hostpath";
    await config()
      .makeApiClient(StorageV1Api)
      .createStorageClass({
        body: {
          metadata: {
            name: storageClass,
            annotations: { "storageclass.kubernetes.io/is-default-class": "true" },
          },
          provisioner: "kubernetes.io/host-path",
          reclaimPolicy: "Delete",
          volumeBindingMode: "Immediate",
        },
      });
    for (const fake of options.nodes ?? (options.realNode ? [] : defaultFakeNodes)) {
      await core.createNode({ body: fakeNode(fake, options.podsPerNode ?? 1100) });
    }
    await waitUntil(
      "kwok's nodes and the default service account",
      procs,
      async () => {
        const nodes = await core.listNode();
        const ready = nodes.items.every((n) =>
          n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
        await core.readNamespacedServiceAccount({ name: "default", namespace: "default" });
        return ready && (nodes.items.length > 0 || options.realNode === true);
      },
      60_000,
      logDir,
    );
    if (options.realNode) {
      node = await startRealNode({
        address,
        pkiDir: dir,
        markers: [dir, etcdDir],
        adminKubeconfig,
        server,
        config,
        binaries: { kubelet: binaryPath("kubelet"), kubeProxy: binaryPath("kube-proxy") },
        logDir,
        kubeconfigText,
        log,
      });
    }
    log(`kube harness: ${kubeRelease} control plane at ${server}, kwok nodes ready (logs in ${logDir})`);

    return {
      kubeconfig: adminKubeconfig,
      server,
      caFile: join(dir, "ca.crt"),
      storageClass,
      config,
      kubeconfigForToken(token, name) {
        const file = join(dir, `${name}.kubeconfig`);
        writeFileSync(file, kubeconfigText(server, dir, { token }));
        return file;
      },
      logDir,
      node,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Creates a namespace and waits for its default service account, which Pods need to be admitted. */
export async function createTestNamespace(
  kube: Kube,
  name: string,
  labels: Record<string, string> = {},
): Promise<void> {
  const core = kube.config().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name, labels } } });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      await core.readNamespacedServiceAccount({ name: "default", namespace: name });
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`namespace ${name} got no default service account within 30 s`);
}
