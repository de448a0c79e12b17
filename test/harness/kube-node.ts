/**
 * A real node for the test cluster, on this machine, beside kwok's fake
 * ones: Debian's containerd and runc, Debian's CNI plugins (bridge,
 * host-local, loopback, portmap, firewall), and kubelet and kube-proxy built
 * from the same pinned `k8s.io/kubernetes` module as the control plane. Pods
 * on it really run, so a CVM's Pod boots its supervisor, engine and systemd.
 *
 * Everything it makes is its own, and stop() removes all of it: a containerd
 * with its own root, state and socket; kubelet's root dir and cgroup root
 * (`/cvm-test-node` in every hierarchy); the bridge `cvmnode0` and the
 * Pods' network namespaces; iptables chains KUBE-* (kube-proxy, kubelet) and
 * CNI-* (the plugins); mounts and loop devices under its directory. One real
 * node runs per machine at a time (a lock, which also lets the next start
 * clean up after a test process that died without stopping it).
 *
 * TEST ADAPTATION: this machine's capability bounding set lacks
 * CAP_SYS_RESOURCE, so runc refuses every privileged container ("unable to
 * apply caps"). containerd runs runc through `cvm-test-runc`, a wrapper that
 * removes that one capability from what a container or an exec asks for and
 * changes nothing else. A node whose bounding set is whole (any cloud node)
 * needs no wrapper; docs/architecture.md says why this was chosen over a
 * node inside the cgroup v2 VM.
 */

import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { cp, readlink } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { buildImages } from "../../images/build.js";
import { signCertificate } from "./kube-pki.js";
import { freePort } from "./ports.js";
import { type Proc, processAlive, startProcess, stopProcess, waitUntil } from "./processes.js";
import { registryAddress, registryStorage } from "./services.js";

const run = promisify(execFile);

export const realNodeName = "cvm-real-node";
/** The Pods' addresses (host-local IPAM on the bridge); kube-proxy masquerades traffic leaving it. */
export const podSubnet = "10.246.0.0/24";
const bridge = "cvmnode0";
const cgroupRoot = "cvm-test-node";
const lockFile = "/run/lock/cvm-test-real-node.json";
const cniBin = "/usr/lib/cni";
const cniPlugins = ["bridge", "host-local", "loopback", "portmap", "firewall"];

/** Why a real node cannot start here, or undefined when it can. */
export function realNodeUnavailable(): string | undefined {
  const missing = [
    ["/usr/bin/containerd", "containerd"],
    ["/usr/sbin/runc", "runc"],
    ["/usr/bin/jq", "jq"],
    ...cniPlugins.map((p) => [join(cniBin, p), "containernetworking-plugins"]),
  ].filter(([path]) => !existsSync(path));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))];
    return `a real node needs ${packages.join(", ")} (scripts/provision.sh installs them)`;
  }
  if (process.getuid?.() !== 0) return "a real node needs root (containerd, kubelet, iptables)";
  return undefined;
}

/** The node's address: the one this machine reaches the world from (the API server and Pods reach it there too). */
export async function nodeAddress(): Promise<string> {
  const { stdout } = await run("ip", ["-4", "-o", "route", "get", "1.1.1.1"]);
  const address = /\bsrc (\d+\.\d+\.\d+\.\d+)/.exec(stdout)?.[1];
  if (!address) throw new Error(`cannot tell this machine's address from: ${stdout}`);
  return address;
}

/**
 * TEST ADAPTATION (see the module comment): runc, less CAP_SYS_RESOURCE in
 * what a privileged container (its bundle's config.json) or an exec (its
 * process.json) asks for.
 */
const runcWrapper = `#!/bin/sh
# cvm-test-runc: TEST ADAPTATION of the tests' real node (test/harness/kube-node.ts).
# This machine's bounding set lacks CAP_SYS_RESOURCE, so runc refuses privileged
# containers; drop that one capability from the spec, then run runc unchanged.
strip='walk(if type == "array" then map(select(. != "CAP_SYS_RESOURCE")) else . end)'
edit() { jq -c "$strip" "$1" > "$1.cvm-test" && mv "$1.cvm-test" "$1"; }
previous=
for arg in "$@"; do
  case "$previous" in
    --bundle|-b) [ -f "$arg/config.json" ] && edit "$arg/config.json" ;;
    --process|-p) [ -f "$arg" ] && edit "$arg" ;;
  esac
  previous="$arg"
done
exec /usr/sbin/runc "$@"
`;

interface NodeFiles {
  dir: string;
  socket: string;
}

function files(dir: string): NodeFiles {
  return { dir, socket: join(dir, "containerd.sock") };
}

function containerdConfig(dir: string, sandboxImage: string, registries: string[]): string {
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  const mirrors = registries.flatMap((r) => [`[${cri}.registry.mirrors."${r}"]`, `  endpoint = ["http://${r}"]`]);
  return [
    "version = 2",
    `root = "${join(dir, "containerd")}"`,
    `state = "${join(dir, "containerd-state")}"`,
    `[grpc]`,
    `  address = "${join(dir, "containerd.sock")}"`,
    `[ttrpc]`,
    `  address = "${join(dir, "containerd.sock.ttrpc")}"`,
    `[plugins."io.containerd.internal.v1.opt"]`,
    `  path = "${join(dir, "opt")}"`,
    `[${cri}]`,
    `  sandbox_image = "${sandboxImage}"`,
    `  enable_selinux = false`,
    // TEST ADAPTATION, like the runc wrapper: lowering a process's OOM score needs CAP_SYS_RESOURCE too.
    `  restrict_oom_score_adj = true`,
    `[${cri}.containerd]`,
    `  snapshotter = "overlayfs"`,
    `  default_runtime_name = "runc"`,
    `[${cri}.containerd.runtimes.runc]`,
    `  runtime_type = "io.containerd.runc.v2"`,
    `[${cri}.containerd.runtimes.runc.options]`,
    `  SystemdCgroup = false`,
    `  BinaryName = "${join(dir, "bin", "cvm-test-runc")}"`,
    `[${cri}.cni]`,
    `  bin_dir = "${cniBin}"`,
    `  conf_dir = "${join(dir, "cni")}"`,
    ...mirrors,
    "",
  ].join("\n");
}

function cniConfig(dir: string): string {
  return JSON.stringify({
    cniVersion: "0.4.0",
    name: "cvm-test-node",
    plugins: [
      {
        type: "bridge",
        bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: podSubnet }]],
          routes: [{ dst: "0.0.0.0/0" }],
          dataDir: join(dir, "ipam"),
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
      // The host engine's FORWARD policy is DROP: this plugin lets each Pod's traffic through.
      { type: "firewall" },
    ],
  });
}

function kubeletConfig(dir: string, address: string, port: number, healthzPort: number, caFile: string): string {
  return JSON.stringify({
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    address,
    port,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: caFile } },
    authorization: { mode: "AlwaysAllow" },
    tlsCertFile: join(dir, "kubelet.crt"),
    tlsPrivateKeyFile: join(dir, "kubelet.key"),
    // cgroup v1 here, and containerd's runc on cgroupfs: kubelet must agree.
    cgroupDriver: "cgroupfs",
    cgroupRoot: `/${cgroupRoot}`,
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${join(dir, "containerd.sock")}`,
    // Its own, not /var/log/pods (its links in /var/log/containers are removed on stop).
    podLogsDir: join(dir, "pod-logs"),
    clusterDomain: "cluster.local",
    resolvConf: "/etc/resolv.conf",
    serializeImagePulls: false,
    // A shared disk: evict only when it is really full; collect images only when nearly so.
    evictionHard: {
      "memory.available": "100Mi",
      "nodefs.available": "1%",
      "imagefs.available": "1%",
      "nodefs.inodesFree": "1%",
    },
    imageGCHighThresholdPercent: 95,
    imageGCLowThresholdPercent: 90,
    maxPods: 110,
  });
}

function kubeProxyConfig(kubeconfig: string, address: string, healthz: number, metrics: number): string {
  return JSON.stringify({
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    clientConnection: { kubeconfig },
    hostnameOverride: realNodeName,
    bindAddress: address,
    healthzBindAddress: `127.0.0.1:${healthz}`,
    metricsBindAddress: `127.0.0.1:${metrics}`,
    mode: "iptables",
    clusterCIDR: podSubnet,
    nodePortAddresses: [`${address}/32`],
    // Leave the machine's conntrack limits and route_localnet alone.
    conntrack: { maxPerCore: 0, min: 0 },
    iptables: { localhostNodePorts: false, syncPeriod: "30s", minSyncPeriod: "0s" },
  });
}

/** The hierarchies the node's tree is in: every v1 one, the named systemd one, and (hybrid) the unified one, where runc mirrors it. */
function hierarchies(): string[] {
  if (!existsSync("/sys/fs/cgroup")) return [];
  return readdirSync("/sys/fs/cgroup")
    .map((entry) => join("/sys/fs/cgroup", entry))
    .filter((path) => existsSync(join(path, "cgroup.procs")));
}

/** kubelet insists that its cgroup root exist; cpuset needs its parent's CPUs and memory nodes before use. */
function makeCgroupRoot(): void {
  for (const hierarchy of hierarchies()) {
    const path = join(hierarchy, cgroupRoot);
    mkdirSync(path, { recursive: true });
    for (const file of ["cpuset.cpus", "cpuset.mems"]) {
      if (existsSync(join(path, file)) && readFileSync(join(path, file), "utf8").trim() === "") {
        writeFileSync(join(path, file), readFileSync(join(hierarchy, file)));
      }
    }
  }
}

/** Every process in a cgroup tree. */
function processesIn(path: string): number[] {
  if (!existsSync(path)) return [];
  const here = readFileSync(join(path, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  const below = readdirSync(path, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) => processesIn(join(path, entry.name)));
  return [...here, ...below];
}

/** Removes a cgroup tree depth-first; a directory whose processes are still leaving is retried. */
async function removeCgroupTree(path: string): Promise<void> {
  if (!existsSync(path)) return;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) await removeCgroupTree(join(path, entry.name));
  }
  for (let attempt = 0; attempt < 20 && existsSync(path); attempt++) {
    try {
      rmdirSync(path);
    } catch {
      await sleep(250);
    }
  }
}

async function quiet(command: string, args: string[]): Promise<string> {
  return run(command, args).then(
    ({ stdout }) => stdout,
    () => "",
  );
}

/** iptables chains of a prefix in a table, and every rule elsewhere that jumps to one. */
async function removeChains(table: string, prefix: string): Promise<void> {
  const rules = (await quiet("iptables", ["-w", "-t", table, "-S"])).split("\n");
  const chains = rules.filter((r) => r.startsWith(`-N ${prefix}`)).map((r) => r.split(" ")[1]);
  if (chains.length === 0) return;
  for (const rule of rules) {
    const jump = / -j (\S+)/.exec(rule)?.[1];
    const chain = rule.split(" ")[1];
    if (rule.startsWith("-A ") && jump && chains.includes(jump) && !chains.includes(chain)) {
      await quiet("sh", ["-c", `iptables -w -t ${table} ${rule.replace(/^-A /, "-D ")}`]);
    }
  }
  for (const chain of chains) await quiet("iptables", ["-w", "-t", table, "-F", chain]);
  for (const chain of chains) await quiet("iptables", ["-w", "-t", table, "-X", chain]);
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const points = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => Boolean(point) && (point === dir || point.startsWith(`${dir}/`)));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

function isContainerd(pid: number): boolean {
  try {
    return /containerd/.test(readFileSync(`/proc/${pid}/comm`, "utf8"));
  } catch {
    return false;
  }
}

/** Processes whose command line mentions `needle` (containerd's shims name their containerd's socket). */
function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(needle)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * Removes everything a real node made, whether it stopped cleanly or its
 * test process died: containers (through containerd while it answers, then
 * its shims), mounts, network namespaces, loop devices, the bridge, the
 * chains, the cgroup tree and the directory. Idempotent.
 */
export async function cleanUpNode(dir: string, netnsBefore?: Set<string>, markers: string[] = []): Promise<void> {
  const { socket } = files(dir);
  const kill = (pids: number[]) => {
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  const ours = () => [...new Set([dir, ...markers].flatMap(processesMentioning))];
  // First whatever would start containers again (kubelet; after a dead test process, its
  // control plane too), while containerd still answers for the containers themselves.
  kill(ours().filter((pid) => !isContainerd(pid)));
  const ctr = (...args: string[]) => quiet("ctr", ["--address", socket, "--namespace", "k8s.io", ...args]);
  if (existsSync(socket)) {
    const tasks = (await ctr("tasks", "ls", "-q")).split("\n").filter(Boolean);
    for (const task of tasks) await ctr("tasks", "kill", "--signal", "SIGKILL", task);
    for (const task of tasks) await ctr("tasks", "delete", "--force", task);
    const containers = (await ctr("containers", "ls", "-q")).split("\n").filter(Boolean);
    for (const container of containers) await ctr("containers", "delete", container);
  }
  // Then containerd and its shims, and whatever still runs in the node's cgroups (a killed
  // shim leaves its container's processes behind).
  kill(ours());
  kill(hierarchies().flatMap((hierarchy) => processesIn(join(hierarchy, cgroupRoot))));
  // Network namespaces the CRI made for this node's Pods (mounted once per mount
  // namespace that shares /run: unmounted until none is left).
  const netnsDir = "/run/netns";
  if (existsSync(netnsDir)) {
    for (const name of readdirSync(netnsDir)) {
      if (!name.startsWith("cni-") || netnsBefore?.has(name)) continue;
      const path = join(netnsDir, name);
      for (let i = 0; i < 5 && mountsUnder(path).length > 0; i++) await quiet("umount", [path]);
      try {
        rmSync(path, { force: true });
      } catch {
        // Shadowed: someone bound /run/netns over itself (`ip netns add` does) after it was
        // mounted. The namespace outlives us, empty once its veth is gone (below).
      }
    }
  }
  for (const point of mountsUnder(dir)) await quiet("umount", ["-l", point]);
  for (const line of (await quiet("losetup", ["--list", "--noheadings", "--output", "NAME,BACK-FILE"])).split("\n")) {
    const [device, file] = line.trim().split(/\s+/);
    if (device && file?.startsWith(`${dir}/`)) await quiet("losetup", ["-d", device]);
  }
  // kubelet links every container's log into /var/log/containers, whatever its logs dir.
  const links = "/var/log/containers";
  if (existsSync(links)) {
    for (const name of readdirSync(links)) {
      const target = await readlink(join(links, name)).catch(() => "");
      if (target.startsWith(`${dir}/`)) rmSync(join(links, name), { force: true });
    }
    if (readdirSync(links).length === 0) rmdirSync(links);
  }
  // Every Pod's veth (a Pod killed without its CNI teardown keeps its pair otherwise), then the bridge.
  for (const line of (await quiet("ip", ["-o", "link", "show", "master", bridge])).split("\n")) {
    const name = /^\d+: ([^:@]+)/.exec(line)?.[1];
    if (name) await quiet("ip", ["link", "delete", name]);
  }
  await quiet("ip", ["link", "delete", bridge]);
  for (const table of ["filter", "nat", "mangle"]) {
    await removeChains(table, "KUBE-");
    await removeChains(table, "CNI-");
  }
  for (const hierarchy of hierarchies()) await removeCgroupTree(join(hierarchy, cgroupRoot));
  rmSync(dir, { recursive: true, force: true });
}

interface Lock {
  pid: number;
  dir: string;
  /** Directories the cluster's other processes name on their command lines (its PKI, etcd's data). */
  markers?: string[];
}

/** Takes the machine's real-node lock, cleaning up after a holder that died; waits for a live one. */
async function takeLock(dir: string, markers: string[], log: (line: string) => void): Promise<void> {
  let announced = false;
  for (;;) {
    const held = existsSync(lockFile) ? (JSON.parse(readFileSync(lockFile, "utf8")) as Lock) : undefined;
    if (held && processAlive(held.pid) && held.pid !== process.pid) {
      if (!announced) log(`kube harness: waiting for the real node of process ${held.pid}`);
      announced = true;
      await sleep(2000);
      continue;
    }
    if (held) {
      log(`kube harness: cleaning up the real node process ${held.pid} left in ${held.dir}`);
      await cleanUpNode(held.dir, undefined, held.markers);
    }
    mkdirSync(join(lockFile, ".."), { recursive: true });
    writeFileSync(lockFile, JSON.stringify({ pid: process.pid, dir, markers } satisfies Lock));
    return;
  }
}

/**
 * Pods reach this machine's registry at the node's address, same port, as a
 * cluster's Pods reach its in-house registry: a second docker-registry
 * process serving the loopback one's storage (the blobs are files; either
 * serves what the other stored).
 */
function registryForPods(address: string, dir: string, logDir: string): { proc: Proc; registry: string } {
  const port = registryAddress.split(":")[1];
  const config = join(dir, "registry.yml");
  writeFileSync(
    config,
    [
      "version: 0.1",
      "log: { level: warn }",
      `storage: { filesystem: { rootdirectory: ${registryStorage} } }`,
      `http: { addr: "${address}:${port}" }`,
      "",
    ].join("\n"),
  );
  return {
    proc: startProcess("registry", "docker-registry", ["serve", config], logDir),
    registry: `${address}:${port}`,
  };
}

export interface RealNode {
  name: string;
  /** The node's address (the API server and Pods reach the machine there). */
  address: string;
  /** The registry as Pods and the node's containerd reach it: host:port, plain HTTP. */
  registry: string;
  /** containerd's socket (ctr --address). */
  containerdSocket: string;
  /** The node's own directory: kubelet's root, containerd's root and state. */
  dir: string;
  /** `ctr` against this node's containerd, in the CRI's namespace. */
  ctr(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export interface RealNodeOptions {
  /** The node's address (nodeAddress()); the API server's certificate must name it. */
  address: string;
  /** The cluster's PKI directory (ca.crt, ca.key). */
  pkiDir: string;
  /**
   * What the control plane's command lines name (its PKI dir, etcd's data
   * dir): if this test process dies unstopped, the next real node's start
   * ends those processes too.
   */
  markers: string[];
  /** An admin kubeconfig (kube-proxy's credentials). */
  adminKubeconfig: string;
  /** The API server, as the node reaches it. */
  server: string;
  config: () => KubeConfig;
  binaries: { kubelet: string; kubeProxy: string };
  logDir: string;
  kubeconfigText: (server: string, dir: string, user: { cert: string; key: string }) => string;
  log: (line: string) => void;
}

/** Starts containerd, kubelet and kube-proxy; resolves once the node is Ready. */
export async function startRealNode(options: RealNodeOptions): Promise<RealNode> {
  const why = realNodeUnavailable();
  if (why) throw new Error(why);
  const dir = mkdtempSync("/tmp/cvm-node-");
  try {
    await takeLock(dir, options.markers, options.log);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const procs: Proc[] = [];
  const netnsBefore = new Set(existsSync("/run/netns") ? readdirSync("/run/netns") : []);
  const { socket } = files(dir);
  const ctr = async (args: string[]) =>
    (await run("ctr", ["--address", socket, "--namespace", "k8s.io", ...args], { maxBuffer: 16 * 1024 * 1024 })).stdout;

  const stop = async () => {
    // Pods first, while kubelet can still tear them down (CNI DEL, volume unmounts).
    const core = options.config().makeApiClient(CoreV1Api);
    const pods = await core
      .listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${realNodeName}` })
      .catch(() => ({ items: [] }));
    for (const pod of pods.items) {
      await core
        .deleteNamespacedPod({
          name: pod.metadata?.name ?? "",
          namespace: pod.metadata?.namespace ?? "",
          gracePeriodSeconds: 0,
        })
        .catch(() => undefined);
    }
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && procs.every((p) => p.child.exitCode === null)) {
      const sandboxes = await ctr(["tasks", "ls", "-q"]).catch(() => "");
      if (sandboxes.trim() === "") break;
      await sleep(500);
    }
    for (const proc of [...procs].reverse()) await stopProcess(proc, 30_000);
    // The Pods' logs outlive the node, beside the other processes' logs.
    await cp(join(dir, "pod-logs"), join(options.logDir, "pods"), { recursive: true }).catch(() => undefined);
    await quiet(options.binaries.kubeProxy, ["--cleanup"]);
    await cleanUpNode(dir, netnsBefore);
    if (existsSync(lockFile) && (JSON.parse(readFileSync(lockFile, "utf8")) as Lock).pid === process.pid) {
      rmSync(lockFile, { force: true });
    }
  };

  try {
    const { address } = options;
    const forPods = registryForPods(address, dir, options.logDir);
    procs.push(forPods.proc);
    await waitUntil(
      "the registry for Pods",
      procs,
      async () => (await fetch(`http://${forPods.registry}/v2/`)).ok,
      30_000,
      options.logDir,
    );
    const [pause] = await buildImages({ names: ["pause"], log: (line) => options.log(`images: ${line}`) });

    mkdirSync(join(dir, "bin"), { recursive: true });
    writeFileSync(join(dir, "bin", "cvm-test-runc"), runcWrapper, { mode: 0o755 });
    mkdirSync(join(dir, "cni"), { recursive: true });
    writeFileSync(join(dir, "cni", "10-cvm-test-node.conflist"), cniConfig(dir));
    writeFileSync(
      join(dir, "containerd.toml"),
      containerdConfig(dir, pause.reference, [registryAddress, forPods.registry]),
    );
    procs.push(
      startProcess("containerd", "/usr/bin/containerd", ["--config", join(dir, "containerd.toml")], options.logDir),
    );
    await waitUntil(
      "containerd",
      procs,
      async () => (await ctr(["version"])).includes("Server"),
      30_000,
      options.logDir,
    );

    // The kubelet's identity (Node authorizer: system:node:<name>) and its serving certificate.
    await signCertificate(
      options.pkiDir,
      "kubelet-client",
      `/O=system:nodes/CN=system:node:${realNodeName}`,
      "extendedKeyUsage=clientAuth\n",
    );
    await signCertificate(
      options.pkiDir,
      "kubelet-serving",
      `/CN=${realNodeName}`,
      `subjectAltName=IP:${address},DNS:${realNodeName}\nextendedKeyUsage=serverAuth\n`,
    );
    for (const ext of ["crt", "key"]) {
      writeFileSync(join(dir, `kubelet.${ext}`), readFileSync(join(options.pkiDir, `kubelet-serving.${ext}`)));
    }
    writeFileSync(
      join(dir, "kubelet.kubeconfig"),
      options.kubeconfigText(options.server, options.pkiDir, { cert: "kubelet-client.crt", key: "kubelet-client.key" }),
    );
    const [kubeletPort, healthzPort, proxyHealthz, proxyMetrics] = [
      await freePort(address),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    writeFileSync(
      join(dir, "kubelet.json"),
      kubeletConfig(dir, address, kubeletPort, healthzPort, join(options.pkiDir, "ca.crt")),
    );
    makeCgroupRoot();
    procs.push(
      startProcess(
        "kubelet",
        options.binaries.kubelet,
        [
          `--config=${join(dir, "kubelet.json")}`,
          `--kubeconfig=${join(dir, "kubelet.kubeconfig")}`,
          `--root-dir=${join(dir, "kubelet")}`,
          `--cert-dir=${join(dir, "kubelet-pki")}`,
          `--hostname-override=${realNodeName}`,
          `--node-ip=${address}`,
          `--pod-infra-container-image=${pause.reference}`,
          "--node-labels=cvm.dev/test-node=real",
          "--v=1",
        ],
        options.logDir,
      ),
    );
    writeFileSync(
      join(dir, "kube-proxy.json"),
      kubeProxyConfig(options.adminKubeconfig, address, proxyHealthz, proxyMetrics),
    );
    procs.push(
      startProcess(
        "kube-proxy",
        options.binaries.kubeProxy,
        [`--config=${join(dir, "kube-proxy.json")}`, "--v=1"],
        options.logDir,
      ),
    );
    const core = options.config().makeApiClient(CoreV1Api);
    await waitUntil(
      `node ${realNodeName} Ready`,
      procs,
      async () => {
        const node = await core.readNode({ name: realNodeName });
        return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
      },
      120_000,
      options.logDir,
    );
    options.log(
      `kube harness: real node ${realNodeName} Ready at ${address} (containerd, kubelet, kube-proxy; ${dir})`,
    );
    return { name: realNodeName, address, registry: forPods.registry, containerdSocket: socket, dir, ctr, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
