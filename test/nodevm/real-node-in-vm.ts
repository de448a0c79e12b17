/**
 * A measurement, not a test: the tests' real Kubernetes node run inside the
 * cgroup v2 node VM (a real kernel where privileged containers work, with
 * AppArmor, as on GKE's Ubuntu nodes) instead of on this machine with its
 * runc wrapper. It answers the two questions the choice between them rests
 * on (docs/architecture.md): how long a bare Pod takes to run, and whether a
 * CVM's Pod boots.
 *
 *   CVM_TEST_IMAGE_SYSTEMD_DOCKER=<ref> node --import tsx test/nodevm/real-node-in-vm.ts
 *
 * In the VM: the same Debian containerd and runc as the host node, Debian's
 * CNI plugins and kubelet from the pinned module, standalone (static Pods; the
 * VM has no network to reach an API server), and the same supervisor Pod spec
 * the provider creates (its claim and Secret as host paths). The CVM image
 * arrives in the supervisor's engine already (payload.ts's engine seed), as
 * the VM cannot pull. Prints the phases' seconds as JSON.
 */

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildImages } from "../../images/build.js";
import { defaultSettings } from "../../src/core/settings.js";
import { supervisorPodSpec } from "../../src/providers/kubernetes/pod-spec.js";
import { binaryPath, ensureKubeBinaries } from "../harness/kube.js";
import { diskDevice, startNodeVm } from "../harness/nodevm.js";
import { cvmImageFile, engineSeed } from "./payload.js";

const run = promisify(execFile);
const log = (line: string) => console.error(line);
const cvmImage = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
if (!cvmImage) throw new Error("set CVM_TEST_IMAGE_SYSTEMD_DOCKER (npm test sets it; images/build.ts prints it)");

const node = "/opt/node";
const runtimeDir = "/srv/cvm-runtime";

function containerdConfig(): string {
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  return [
    "version = 2",
    `root = "/var/lib/cvm-node/containerd"`,
    `state = "/run/cvm-node/containerd"`,
    `[grpc]`,
    `  address = "/run/cvm-node/containerd.sock"`,
    `[${cri}]`,
    `  sandbox_image = "cvm/pause:latest"`,
    `[${cri}.containerd.runtimes.runc]`,
    `  runtime_type = "io.containerd.runc.v2"`,
    `[${cri}.containerd.runtimes.runc.options]`,
    `  SystemdCgroup = true`,
    `[${cri}.cni]`,
    `  bin_dir = "${node}/cni"`,
    `  conf_dir = "${node}/cni-conf"`,
    "",
  ].join("\n");
}

const cniConfig = JSON.stringify({
  cniVersion: "0.4.0",
  name: "cvm-vm-node",
  plugins: [
    {
      type: "bridge",
      bridge: "cni0",
      isGateway: true,
      ipMasq: true,
      ipam: { type: "host-local", ranges: [[{ subnet: "10.88.0.0/24" }]], routes: [{ dst: "0.0.0.0/0" }] },
    },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
});

const kubeletConfig = JSON.stringify({
  apiVersion: "kubelet.config.k8s.io/v1beta1",
  kind: "KubeletConfiguration",
  // cgroup v2 under systemd, as GKE's nodes: the systemd driver on both sides.
  cgroupDriver: "systemd",
  failSwapOn: false,
  containerRuntimeEndpoint: "unix:///run/cvm-node/containerd.sock",
  staticPodPath: `${node}/manifests`,
  fileCheckFrequency: "1s",
  podLogsDir: "/var/log/cvm-node-pods",
  readOnlyPort: 0,
  authentication: { anonymous: { enabled: false }, webhook: { enabled: false } },
  authorization: { mode: "AlwaysAllow" },
  evictionHard: { "memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%" },
});

function barePod(): object {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "bare", namespace: "default" },
    spec: { containers: [{ name: "main", image: "cvm/hello:latest", command: ["sleep", "3600"] }] },
  };
}

/** The provider's own supervisor Pod, with its claim, Secret and runtime dir as host paths (a static Pod has neither). */
function cvmPod(): object {
  const pod = supervisorPodSpec(
    {
      id: "env_vm",
      name: "vm",
      image: "cvm/debian-systemd-docker:nodevm",
      cvm: true,
      cpu: 1,
      memoryGiB: 1,
      diskGiB: 4,
      ownerEmail: "owner@example.com",
    },
    defaultSettings,
    { supervisorImage: "cvm/supervisor:latest" },
  );
  const volumes = pod.spec?.volumes?.map((volume) => {
    const hostPaths: Record<string, string> = {
      home: "/srv/cvm-claim",
      runtime: runtimeDir,
      credentials: "/srv/cvm-secret",
    };
    const path = hostPaths[volume.name];
    return path ? { name: volume.name, hostPath: { path, type: "DirectoryOrCreate" } } : volume;
  });
  return { ...pod, metadata: { ...pod.metadata, namespace: "default" }, spec: { ...pod.spec, volumes } };
}

async function payload(dir: string): Promise<string> {
  const tree = join(dir, "tree");
  for (const sub of ["bin", "cni", "cni-conf", "images", "manifests-later"])
    await mkdir(join(tree, sub), { recursive: true });
  await ensureKubeBinaries(["kubelet"]);
  await copyFile(binaryPath("kubelet"), join(tree, "bin", "kubelet"));
  for (const plugin of ["bridge", "host-local", "loopback", "portmap"]) {
    await copyFile(join("/usr/lib/cni", plugin), join(tree, "cni", plugin));
  }
  await writeFile(join(tree, "containerd.toml"), containerdConfig());
  await writeFile(join(tree, "cni-conf", "10-cvm.conflist"), cniConfig);
  await writeFile(join(tree, "kubelet.json"), kubeletConfig);
  await writeFile(join(tree, "manifests-later", "bare.json"), JSON.stringify(barePod()));
  await writeFile(join(tree, "manifests-later", "cvm.json"), JSON.stringify(cvmPod()));
  const images = await buildImages({ names: ["pause", "hello", "supervisor"], log: (l) => log(`images: ${l}`) });
  for (const image of images) {
    const tag = `cvm/${image.name}:latest`;
    await run("docker", ["tag", image.reference, tag]);
    await run("docker", ["save", "--output", join(tree, "images", `${image.name}.tar`), tag], {
      maxBuffer: 16 * 1024 * 1024,
    });
  }
  const tar = join(dir, "node.tar");
  await run("tar", ["-cf", tar, "-C", tree, "."]);
  return tar;
}

const dir = await mkdtemp("/tmp/cvm-vmnode-");
try {
  const seed = await engineSeed(await cvmImageFile(cvmImage));
  const tar = await payload(dir);
  const vm = await startNodeVm({
    disks: { "cvm-node": tar },
    writableDisks: { "cvm-engine-data": seed },
    memoryMiB: 4096,
    log,
  });
  const phases: Record<string, number> = {};
  const timed = async (name: string, command: string, timeoutMs = 20 * 60_000) => {
    const begun = Date.now();
    const out = await vm.check(command, { timeoutMs });
    phases[name] = Number(((Date.now() - begun) / 1000).toFixed(1));
    log(`vm: ${name} ${phases[name]} s`);
    return out;
  };
  try {
    await timed("systemd up", "systemctl is-system-running --wait || true", 600_000);
    await timed("payload unpacked", `mkdir -p ${node} && tar -xf ${diskDevice("cvm-node")} -C ${node}`);
    await timed(
      "containerd up",
      `mkdir -p /run/cvm-node && (setsid /usr/bin/containerd --config ${node}/containerd.toml > /var/log/cvm-node-containerd.log 2>&1 &) && until ctr --address /run/cvm-node/containerd.sock version >/dev/null 2>&1; do sleep 0.5; done`,
    );
    for (const image of ["pause", "hello", "supervisor"]) {
      await timed(
        `image ${image} imported`,
        `ctr --address /run/cvm-node/containerd.sock -n k8s.io images import ${node}/images/${image}.tar >/dev/null`,
      );
    }
    await timed(
      "kubelet up",
      `mkdir -p ${node}/manifests && (setsid ${node}/bin/kubelet --config=${node}/kubelet.json --root-dir=/var/lib/cvm-node/kubelet --hostname-override=vm-node > /var/log/cvm-node-kubelet.log 2>&1 &) && until node -e "fetch('http://127.0.0.1:10248/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; do sleep 0.5; done`,
    ).catch(async (error) => {
      log((await vm.exec("tail -30 /var/log/cvm-node-kubelet.log")).stdout);
      throw error;
    });
    const ctr = "ctr --address /run/cvm-node/containerd.sock -n k8s.io";
    const running = (name: string) =>
      `until ${ctr} tasks ls | awk '$3 == "RUNNING" { print $1 }' | while read id; do ${ctr} containers info $id | grep -q '"io.kubernetes.container.name": "${name}"' && echo yes; done | grep -q yes; do sleep 0.2; done`;
    const evidence = async () =>
      log(
        (
          await vm.exec(
            `tail -40 /var/log/cvm-node-kubelet.log; echo ---; tail -20 /var/log/cvm-node-containerd.log; echo ---; ${ctr} tasks ls; ${ctr} containers ls`,
          )
        ).stdout,
      );
    await timed(
      "bare Pod running",
      `cp ${node}/manifests-later/bare.json ${node}/manifests/ && ${running("main")}`,
      300_000,
    ).catch(async (error) => {
      await evidence();
      throw error;
    });
    // The claim's subpaths and the runtime dir, with the engine's data root (and the CVM image in it) from the seed disk.
    await vm.check(
      `mkdir -p /srv/cvm-claim/home /srv/cvm-claim/docker /srv/cvm-secret ${runtimeDir}/engine/data && mount -t ext4 ${diskDevice("cvm-engine-data")} ${runtimeDir}/engine/data`,
    );
    await timed(
      "CVM Pod ready (supervisor, engine, systemd)",
      `cp ${node}/manifests-later/cvm.json ${node}/manifests/ && until [ -e ${runtimeDir}/ready ]; do sleep 1; done`,
      30 * 60_000,
    ).catch(async (error) => {
      log(
        (await vm.exec("tail -60 /var/log/cvm-node-pods/*/supervisor/*.log; tail -20 /var/log/cvm-node-kubelet.log"))
          .stdout,
      );
      throw error;
    });
    const engine = `docker -H unix://${runtimeDir}/engine/docker.sock`;
    const inside = await vm.check(
      `c=$(${engine} ps -q | head -1); ${engine} exec $c sh -c 'cat /proc/1/comm; systemctl is-system-running; cat /proc/self/uid_map; docker run --rm cvm/hello echo ok'`,
      { timeoutMs: 10 * 60_000 },
    );
    console.log(JSON.stringify({ phases, inside: inside.trim().split("\n") }, null, 2));
  } finally {
    await vm.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
  if (existsSync(dir)) log(`could not remove ${dir}`);
}
