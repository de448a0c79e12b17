/**
 * A real Kubernetes control plane for the tests, as envtest starts one for
 * operators: etcd (Debian's), kube-apiserver, kube-controller-manager and
 * kube-scheduler built with Go from the pinned `k8s.io/kubernetes` release,
 * and kwok simulating nodes and Pod lifecycles. Everything listens on
 * loopback; certificates are made with openssl per start; the binaries live in
 * the machine cache and are built once per machine (per pinned version).
 *
 * The admission chain is the release's default one (PodSecurity included),
 * with privileged containers allowed cluster-wide, as on GKE, EKS and AKS.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { CoreV1Api, KubeConfig, StorageV1Api, type V1Node } from "@kubernetes/client-node";
import { freePort } from "./ports.js";
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
  "kube-apiserver": controlPlane(),
  "kube-controller-manager": controlPlane(),
  "kube-scheduler": controlPlane(),
  kwok: { module: "kwok", version: kwokRelease, packages: ["sigs.k8s.io/kwok/cmd/kwok"] },
  helm: { module: "helm", version: helmRelease, packages: ["helm.sh/helm/v3/cmd/helm"] },
};

function controlPlane(): BinarySource {
  return {
    module: "kubernetes",
    version: kubeRelease,
    packages: ["kube-apiserver", "kube-controller-manager", "kube-scheduler"].map((c) => `k8s.io/kubernetes/cmd/${c}`),
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

async function openssl(dir: string, args: string[]): Promise<void> {
  await run("openssl", args, { cwd: dir });
}

/** A CA, the API server's serving certificate, an admin client certificate, and the service-account key pair. */
async function makeCertificates(dir: string): Promise<void> {
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=cvm-test-ca",
  ]);
  const sign = async (name: string, subject: string, extensions: string) => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    await openssl(dir, [
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      subject,
    ]);
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    ]);
  };
  await sign(
    "apiserver",
    "/CN=kube-apiserver",
    "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n",
  );
  await sign("admin", "/O=system:masters/CN=cvm-test-admin", "extendedKeyUsage=clientAuth\n");
  await openssl(dir, ["genrsa", "-out", "sa.key", "2048"]);
  await openssl(dir, ["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

function kubeconfigText(server: string, dir: string, user: { cert?: string; key?: string; token?: string }): string {
  const b64 = (file: string) => readFileSync(join(dir, file)).toString("base64");
  const credentials = user.token
    ? { token: user.token }
    : { "client-certificate-data": b64(user.cert ?? ""), "client-key-data": b64(user.key ?? "") };
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "cvm-test", cluster: { server, "certificate-authority-data": b64("ca.crt") } }],
    users: [{ name: "cvm-test", user: credentials }],
    contexts: [{ name: "cvm-test", context: { cluster: "cvm-test", user: "cvm-test" } }],
    "current-context": "cvm-test",
  });
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
  nodes?: FakeNode[];
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
  stop(): Promise<void>;
}

interface Proc {
  name: string;
  child: ChildProcess;
}

function startProcess(name: string, command: string, args: string[], logDir: string): Proc {
  const out = openSync(join(logDir, `${name}.log`), "a");
  const child = spawn(command, args, { stdio: ["ignore", out, out] });
  return { name, child };
}

async function stopProcess({ child }: Proc): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await Promise.race([exited, sleep(10_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

async function waitUntil(
  what: string,
  procs: Proc[],
  probe: () => Promise<boolean>,
  timeoutMs: number,
  logDir: string,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const dead = procs.find((p) => p.child.exitCode !== null);
    if (dead) {
      const tail = readFileSync(join(logDir, `${dead.name}.log`), "utf8").slice(-3000);
      throw new Error(`${dead.name} exited (${dead.child.exitCode}) while waiting for ${what}:\n${tail}`);
    }
    if (await probe().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`${what} was not ready within ${timeoutMs / 1000} s (logs in ${logDir})`);
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
  await ensureKubeBinaries(["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"], log);

  const artifacts = process.env.CVM_TEST_ARTIFACTS ?? join(import.meta.dirname, "..", "..", "artifacts");
  mkdirSync(join(artifacts, "kube"), { recursive: true });
  const logDir = mkdtempSync(join(artifacts, "kube", "run-"));
  // etcd on tmpfs: Debian's etcd 3.4 cannot skip fsync, and the disk is shared.
  const etcdDir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : "/tmp", "cvm-etcd-"));
  const dir = mkdtempSync(join("/tmp", "cvm-kube-"));
  const procs: Proc[] = [];
  // A test process that dies (a timeout, ^C) takes its control plane with it.
  const killAll = () => {
    for (const { child } of procs) if (child.exitCode === null) child.kill("SIGKILL");
  };
  process.once("exit", killAll);
  const stop = async () => {
    process.off("exit", killAll);
    for (const proc of [...procs].reverse()) await stopProcess(proc);
    rmSync(etcdDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await makeCertificates(dir);
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

    const server = `https://127.0.0.1:${apiPort}`;
    procs.push(
      startProcess(
        "kube-apiserver",
        binaryPath("kube-apiserver"),
        [
          `--etcd-servers=${etcdUrl}`,
          "--bind-address=127.0.0.1",
          "--advertise-address=127.0.0.1",
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
          // The default admission chain (PodSecurity, ServiceAccount, LimitRanger, ...), privileged allowed.
          "--allow-privileged=true",
          "--endpoint-reconciler-type=none",
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
    for (const node of options.nodes ?? defaultFakeNodes) {
      await core.createNode({ body: fakeNode(node, options.podsPerNode ?? 1100) });
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
        return ready && nodes.items.length > 0;
      },
      60_000,
      logDir,
    );
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
