/**
 * Isolation, checked from inside a real CVM made by cvm's own supervisor.
 * Each check attempts what root in a CVM must not be able to do to the node,
 * and also checks that the attempt itself worked (the tool ran, the
 * capability was held), so that it fails when the isolation breaks.
 *
 * The same checks run again from inside a container nested in a CVM with
 * `docker run --privileged` (what Docker-in-Docker, kind nodes and binfmt
 * registration need): it holds every capability the CVM holds and mounts
 * proc and sysfs afresh, and must reach no further than the CVM itself.
 *
 * To show that they do fail, the same checks run against a control: a
 * container on the host's engine made as close to `--privileged` as this
 * machine allows (every capability but the dangerous few, no seccomp, no
 * AppArmor, unmasked /proc, the node's PID and cgroup namespaces, the disk
 * and the engine's socket passed in). Every check must fail there.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { hostname, networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, test } from "node:test";
import Dockerode from "dockerode";
import type { Environment } from "../../src/core/environment.js";
import { homeVolumeName } from "../../src/docker/index.js";
import { containerName } from "../../src/supervisor/cvm-container.js";
import { enginePaths } from "../../src/supervisor/engine.js";
import type { CvmSupervisor } from "../../src/supervisor/index.js";
import {
  buildCvm,
  cvmEnvironment,
  execIn,
  fixtureDataDir,
  loadIntoCvm,
  type Ran,
  shIn,
  startSupervisor,
} from "../harness/cvm.js";

const image = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
const skip = image ? false : "CVM_TEST_IMAGE_SYSTEMD_DOCKER is not set: run through `npm test`, which builds it";
const hostDocker = new Dockerode({ socketPath: process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock" });
const dataDir = fixtureDataDir("isolation");
const marker = `cvm-isolation-${process.pid}`;

/** What the checks need of the thing under test: a root shell in it, and where it sits on the node. */
interface IsolationTarget {
  sh(script: string): Promise<Ran>;
  /** Its PID 1, as the node numbers it. */
  pid1OnNode: number;
  containerId: string;
  /** The node's path of the volume mounted at /home inside. */
  homeOnNode: string;
  /**
   * Engines that must not answer from inside: their IDs, the socket paths they
   * listen on, and whether that path must not even exist inside (the host's
   * /var/run/docker.sock is also where a CVM's inner engine listens).
   */
  engines: { id: string; socket: string; absentInside: boolean }[];
}

/** The start of the node's subordinate uid range that the engine maps container root to. */
function subordinateStart(): number {
  const line = readFileSync("/etc/subuid", "utf8")
    .split("\n")
    .find((l) => l.startsWith("dockremap:"));
  assert.ok(line, "no dockremap range in /etc/subuid");
  return Number(line.split(":")[1]);
}

/** Splits a script's `key=value` lines into a record, so each assertion names what it read. */
function fields(ran: Ran): Record<string, string> {
  const record: Record<string, string> = {};
  for (const line of ran.stdout.split("\n")) {
    const equals = line.indexOf("=");
    if (equals > 0) record[line.slice(0, equals)] = line.slice(equals + 1).trim();
  }
  return record;
}

function capabilities(hex: string): Set<number> {
  const value = BigInt(`0x${hex}`);
  return new Set(Array.from({ length: 64 }, (_, bit) => bit).filter((bit) => (value >> BigInt(bit)) & 1n));
}

const capChown = 0;
const capSysAdmin = 21;
const capMknod = 27;

/** The first directory of the node's cgroup path of a process ("cvm", "docker"): where its siblings live. */
function cgroupParentOnNode(pid: number): string {
  const memory = readFileSync(`/proc/${pid}/cgroup`, "utf8")
    .split("\n")
    .find((line) => /^\d+:(memory)?:/.test(line) && line.split(":")[2] !== "/");
  return memory?.split(":")[2].split("/")[1] ?? "";
}

const sysrqCheck = "/proc/sysrq-trigger cannot be written, not even through a fresh proc";
const moduleCheck = "no kernel module can be loaded";
const secretsCheck = "the node's kernel memory and firmware tables cannot be read, though /proc and /sys are whole";

/** Files only the node's root may read, which Docker's masked paths used to hide; those this node has. */
const nodeSecrets = ["/proc/kcore", "/sys/firmware/acpi/tables/DSDT", "/sys/firmware/dmi/tables/DMI"].filter((file) =>
  existsSync(file),
);

/** Checks that cannot mean anything on this node, and why. */
const notApplicable: Record<string, string | false> = {
  [sysrqCheck]:
    !existsSync("/proc/sysrq-trigger") &&
    "this node's kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ is off): there is nothing to write",
  [secretsCheck]:
    nodeSecrets.length === 0 && "this node has none of /proc/kcore and the firmware tables: there is nothing to read",
  [moduleCheck]:
    !existsSync("/proc/modules") &&
    "this node's kernel has no loadable modules (CONFIG_MODULES is off): nothing can be loaded by anyone",
};

const errnoPermission = 1;

/**
 * Sets $f to the memory limit file at the root of its cgroup namespace, the
 * limit its parent set: a fresh mount shows it even where /sys/fs/cgroup is a
 * cgroup of its own below it (a privileged nested container's is). Unmounted
 * with `umount ${limitMount}`.
 */
const limitMount = `/root/${marker}.limit`;
const limitFile = [
  `mkdir -p ${limitMount}`,
  `if mount -t cgroup -o memory cgroup ${limitMount} 2>/dev/null; then f=${limitMount}/memory.limit_in_bytes`,
  `elif mount -t cgroup2 cgroup2 ${limitMount} 2>/dev/null; then f=${limitMount}/memory.max`,
  `else f=/sys/fs/cgroup/memory/memory.limit_in_bytes; [ -e "$f" ] || f=/sys/fs/cgroup/memory.max; fi`,
].join("\n");

const checks: Record<string, (target: IsolationTarget) => Promise<void>> = {
  async "uid 0 inside is an unprivileged uid on the node, and so are the files it creates"(target) {
    const remapped = subordinateStart();
    assert.notEqual(remapped, 0);
    const inside = fields(
      await target.sh(
        `echo uid=$(id -u); echo uidmap=$(head -n1 /proc/self/uid_map | tr -s ' ' ' '); ` +
          `echo made > /home/${marker} && chown 0:0 /home/${marker} && echo wrote=yes`,
      ),
    );
    assert.equal(inside.uid, "0");
    assert.equal(inside.wrote, "yes");
    const [insideStart, outsideStart, length] = inside.uidmap.trim().split(" ").map(Number);
    assert.equal(insideStart, 0);
    assert.equal(outsideStart, remapped, `root inside is uid ${outsideStart} on the node: ${inside.uidmap}`);
    assert.ok(length <= 65536, `uid_map maps ${length} ids: more than the subordinate range`);

    const status = readFileSync(`/proc/${target.pid1OnNode}/status`, "utf8");
    const uids = /^Uid:\s+(.*)$/m.exec(status)![1].split(/\s+/).map(Number);
    assert.deepEqual(uids, [remapped, remapped, remapped, remapped], "its PID 1 runs as another uid on the node");

    const onNode = statSync(join(target.homeOnNode, marker));
    assert.equal(onNode.uid, remapped, "root's file on its home volume is not owned by the remapped uid on the node");
  },

  async "neither the host's engine nor cvm's engine can be reached"(target) {
    const paths = target.engines.map((e) => e.socket).join(" ");
    const absent = target.engines
      .filter((e) => e.absentInside)
      .map((e) => e.socket)
      .join(" ");
    const ran = await target.sh(
      [
        // Every unix socket in its filesystem, and the paths the node's engines listen on.
        `sockets=$(find / \\( -path /proc -o -path /sys \\) -prune -o -type s -print 2>/dev/null)`,
        `for s in $(echo $sockets /var/run/docker.sock /run/containerd/containerd.sock ${paths} | tr ' ' '\\n' | sort -u); do`,
        `  (id=$(timeout 3 docker -H "unix://$s" info --format '{{.ID}}' 2>/dev/null) && echo "answered $s $id") &`,
        `done`,
        `wait`,
        `for s in ${absent}; do [ -e "$s" ] && echo "exists $s"; done`,
        `true`,
      ].join("\n"),
    );
    const answers = ran.stdout.split("\n").filter((l) => l.startsWith("answered "));
    // The probe works: some engine (the inner one, in a CVM) answers it.
    assert.ok(answers.length > 0, `no engine answered at all; the probe is broken:\n${ran.stdout}${ran.stderr}`);
    for (const answer of answers) {
      for (const engine of target.engines) {
        assert.ok(!answer.endsWith(engine.id), `the engine at ${engine.socket} answers from inside: ${answer}`);
      }
    }
    assert.doesNotMatch(ran.stdout, /^exists /m, "the path of an engine's socket on the node exists inside");
  },

  async "no host block devices, and the node's disk can be neither opened nor mounted"(target) {
    const rootLine = readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .find((line) => line.split(" ")[4] === "/");
    const [major, minor] = rootLine!.split(" ")[2].split(":");
    const ran = fields(
      await target.sh(
        [
          `echo blockdevs=$(find /dev -type b 2>/dev/null | tr '\\n' ' ')`,
          `mkdir -p /root/${marker}.mnt`,
          `mknod /root/${marker}.disk b ${major} ${minor} 2>/dev/null; echo mknod=$?`,
          `head -c 512 /root/${marker}.disk > /dev/null 2>&1; echo read=$?`,
          `mount -o ro /root/${marker}.disk /root/${marker}.mnt 2>/dev/null; echo mount=$?`,
          `umount /root/${marker}.mnt 2>/dev/null; rm -f /root/${marker}.disk`,
        ].join("\n"),
      ),
    );
    assert.equal(ran.blockdevs, "", "block devices are visible in its /dev");
    assert.notEqual(ran.read, "0", `the node's disk (${major}:${minor}) could be read from inside`);
    assert.notEqual(ran.mount, "0", `the node's disk (${major}:${minor}) could be mounted from inside`);
    assert.notEqual(ran.mknod, "0", "a block device node could be made (device creation counts on the node)");
  },

  async [sysrqCheck](target) {
    // 'h' only prints help to the kernel log: harmless if the isolation ever broke.
    const ran = fields(
      await target.sh(
        [
          `(echo h > /proc/sysrq-trigger) 2>/dev/null; echo write=$?`,
          `mkdir -p /root/${marker}.proc`,
          `unshare --mount --pid --fork sh -c 'mount -t proc proc /root/${marker}.proc && echo h > /root/${marker}.proc/sysrq-trigger' 2>/dev/null; echo fresh=$?`,
        ].join("\n"),
      ),
    );
    assert.notEqual(ran.write, "0", "/proc/sysrq-trigger was written from inside");
    assert.notEqual(ran.fresh, "0", "sysrq-trigger of a freshly mounted proc was written from inside");
  },

  async "the node's /proc/sys cannot be written, not even through a fresh proc"(target) {
    // Each write puts back the value just read: harmless if the isolation ever broke.
    const ran = fields(
      await target.sh(
        [
          `v=$(cat /proc/sys/vm/swappiness); (echo "$v" > /proc/sys/vm/swappiness) 2>/dev/null; echo node=$?`,
          `k=$(cat /proc/sys/kernel/printk_ratelimit); (echo "$k" > /proc/sys/kernel/printk_ratelimit) 2>/dev/null; echo kernel=$?`,
          `mkdir -p /root/${marker}.sysproc`,
          `unshare --mount --pid --fork sh -c "mount -t proc proc /root/${marker}.sysproc && echo $v > /root/${marker}.sysproc/sys/vm/swappiness" 2>/dev/null; echo fresh=$?`,
          // The writing works where the namespace is its own: its network namespace's settings.
          `f=$(cat /proc/sys/net/ipv4/ip_forward); (echo "$f" > /proc/sys/net/ipv4/ip_forward) 2>/dev/null; echo own=$?`,
        ].join("\n"),
      ),
    );
    assert.equal(ran.own, "0", "its own network namespace's settings cannot be written: the probe is broken");
    assert.notEqual(ran.node, "0", "the node's vm.swappiness was written from inside");
    assert.notEqual(ran.kernel, "0", "the node's kernel.printk_ratelimit was written from inside");
    assert.notEqual(ran.fresh, "0", "the node's vm.swappiness was written through a freshly mounted proc");
  },

  async [secretsCheck](target) {
    const ran = await target.sh(
      nodeSecrets
        .map(
          (file) =>
            `[ -e ${file} ] && echo "exists ${file}"; head -c 1 ${file} > /dev/null 2>&1 && echo "read ${file}"`,
        )
        .join("\n") + "\ntrue",
    );
    // Unmasked: the files are there to try, as in a VM; only the node's root may read them.
    for (const file of nodeSecrets)
      assert.match(ran.stdout, new RegExp(`^exists ${file}$`, "m"), `${file} is not there to try`);
    assert.doesNotMatch(ran.stdout, /^read /m, `read from inside: ${ran.stdout}`);
  },

  async [moduleCheck](target) {
    // init_module with no image: refused for lack of privilege before the kernel reads anything.
    const ran = fields(
      await target.sh(
        `python3 -c 'import ctypes; libc = ctypes.CDLL(None, use_errno=True); libc.init_module(None, 0, b""); print("errno=%d" % ctypes.get_errno())'`,
      ),
    );
    assert.equal(
      Number(ran.errno),
      errnoPermission,
      `init_module was not refused for lack of privilege (errno ${ran.errno})`,
    );
  },

  async "the node's own services cannot be reached over the network"(target) {
    // A service of the node listening on every address, as cvm's server or the supervisor might.
    const connections: Socket[] = [];
    const server = createServer((socket) => {
      connections.push(socket);
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
    const port = (server.address() as { port: number }).port;
    const nodeAddresses = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && a.family === "IPv4")
      .map((a) => a!.address);
    try {
      const ran = await target.sh(
        [
          `gateway=$(ip route 2>/dev/null | awk '/^default/ {print $3; exit}')`,
          `echo gateway=$gateway`,
          `for ip in $gateway ${nodeAddresses.join(" ")}; do`,
          `  timeout 3 bash -c "exec 3<>/dev/tcp/$ip/${port}" 2>/dev/null && echo "reached=$ip"`,
          `done`,
          `true`,
        ].join("\n"),
      );
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /^gateway=\d+\.\d+\.\d+\.\d+$/m, "no default route inside: nothing was tried");
      assert.doesNotMatch(ran.stdout, /^reached=/m, `a service of the node answered: ${ran.stdout}`);
      assert.equal(connections.length, 0, "the node's service received a connection from inside");
    } finally {
      server.close();
    }
  },

  async "host processes are invisible"(target) {
    const sleeper: ChildProcess = spawn("sleep", ["1234.5678"], { stdio: "ignore" });
    try {
      const ran = await target.sh(`ps -e -o pid=,args=`);
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /ps -e -o pid=,args=/, "ps works inside (it lists itself)");
      assert.doesNotMatch(ran.stdout, /sleep 1234\.5678/, "a process of the node is visible inside");
    } finally {
      sleeper.kill();
    }
  },

  async "cgroups outside its own subtree can be neither seen nor changed"(target) {
    const parent = cgroupParentOnNode(target.pid1OnNode);
    assert.notEqual(parent, "", "its cgroup on the node was not found");
    const ran = fields(
      await target.sh(
        [
          `echo cgroups=$(cut -d: -f3 /proc/self/cgroup | sort -u | tr '\\n' ' ')`,
          limitFile,
          `v=$(cat "$f"); echo limit=$v; (echo "$v" > "$f") 2>/dev/null; echo rewrite-limit=$?; umount ${limitMount} 2>/dev/null`,
          `mkdir -p /root/${marker}.cg`,
          `if mount -t cgroup -o memory cgroup /root/${marker}.cg 2>/dev/null || mount -t cgroup2 cgroup2 /root/${marker}.cg 2>/dev/null; then`,
          `  echo fresh-root=$(ls /root/${marker}.cg | tr '\\n' ' ')`,
          `  mkdir /root/${marker}.cg/${parent}/${marker}-sibling 2>/dev/null; echo sibling=$?`,
          `  rmdir /root/${marker}.cg/${parent}/${marker}-sibling 2>/dev/null; umount /root/${marker}.cg`,
          `else echo fresh-root=refused; echo sibling=refused; fi`,
        ].join("\n"),
      ),
    );
    for (const path of ran.cgroups.split(" ").filter(Boolean)) {
      assert.ok(!path.includes(target.containerId.slice(0, 12)), `the node's cgroup path shows inside: ${path}`);
      assert.ok(!path.startsWith(`/${parent}/`), `the node's cgroup path shows inside: ${path}`);
    }
    assert.notEqual(ran.limit, "", "no memory limit file found inside");
    assert.notEqual(ran["rewrite-limit"], "0", "it could rewrite its memory limit, which its parent sets");
    assert.ok(
      !ran["fresh-root"].split(" ").includes(parent),
      `a fresh cgroup mount inside reaches the node's cgroup root: ${ran["fresh-root"]}`,
    );
    assert.notEqual(ran.sibling, "0", `it created a cgroup beside its own in /${parent}`);

    // On the node: its parent cgroup stays root's and closed to others, so no sibling can be made.
    for (const hierarchy of ["memory", "pids", "systemd", "unified"]) {
      const dir = `/sys/fs/cgroup/${hierarchy}/${parent}`;
      if (!existsSync(dir)) continue;
      const info = statSync(dir);
      assert.equal(info.uid, 0, `${dir} is not root's`);
      assert.equal(info.mode & 0o022, 0, `${dir} is writable by group or others`);
      assert.ok(!readdirSync(dir).some((name) => name.includes(marker)), `a sibling cgroup appeared in ${dir}`);
    }
  },

  async "its capabilities count only inside its user namespace"(target) {
    const nodeName = hostname();
    const ran = fields(
      await target.sh(
        [
          `echo capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)`,
          `mknod /root/${marker}.null c 1 3 2>/dev/null; echo mknod=$?; rm -f /root/${marker}.null`,
          limitFile,
          `echo limit-owner=$(stat -c %u "$f"); chown 0:0 "$f" 2>/dev/null; echo chown=$?; umount ${limitMount} 2>/dev/null`,
          `date -s "@$(date +%s)" > /dev/null 2>&1; echo settime=$?`,
          `[ "$(hostname)" != "${nodeName}" ] && hostname ${marker} && echo hostname=$(hostname)`,
        ].join("\n"),
      ),
    );
    const held = capabilities(ran.capeff);
    for (const cap of [capChown, capSysAdmin, capMknod])
      assert.ok(held.has(cap), `root inside lacks capability ${cap}`);
    assert.notEqual(ran.mknod, "0", "CAP_MKNOD made a device node: it counts beyond its own user namespace");
    assert.equal(ran["limit-owner"], "65534", "a file of the node's root is not shown as the overflow uid inside");
    assert.notEqual(ran.chown, "0", "CAP_CHOWN took over a file of the node's root");
    assert.notEqual(ran.settime, "0", "the node's clock could be set from inside");
    assert.equal(ran.hostname, marker, "hostname inside its own UTS namespace does not work");
    assert.equal(hostname(), nodeName, "setting the hostname inside changed the node's hostname");
  },
};

describe("CVM isolation, from inside a real CVM", { skip }, () => {
  let supervisor: CvmSupervisor;
  let environment: Environment;
  let target: IsolationTarget;

  before(async () => {
    supervisor = await startSupervisor(dataDir);
    environment = cvmEnvironment(image!);
    const { observation, log } = await buildCvm(supervisor, environment);
    assert.ok(observation.running, `the CVM is not running:\n${log.join("\n")}`);
    const cvmEngine = new Dockerode({ socketPath: enginePaths(dataDir).socket });
    const container = await cvmEngine.getContainer(containerName(environment.id)).inspect();
    const volume = await cvmEngine.getVolume(homeVolumeName(environment.id)).inspect();
    target = {
      sh: (script) => shIn(supervisor, environment, script),
      pid1OnNode: container.State.Pid,
      containerId: container.Id,
      homeOnNode: volume.Mountpoint,
      engines: [
        { id: (await hostDocker.info()).ID as string, socket: "/var/run/docker.sock", absentInside: false },
        { id: (await cvmEngine.info()).ID as string, socket: enginePaths(dataDir).socket, absentInside: true },
      ],
    };
  });

  after(async () => {
    if (environment) await supervisor?.remove(environment, { keepHome: false }).catch(() => undefined);
    await supervisor?.close();
  });

  for (const [name, check] of Object.entries(checks)) {
    test(name, { skip: notApplicable[name] ?? false }, () => check(target));
  }
});

/** The node's PID of a nested container's PID 1: the process in its cgroup that is PID 1 of its own namespace. */
function nodePidOfNested(containerId: string): number {
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      if (!readFileSync(`/proc/${entry}/cgroup`, "utf8").includes(`/docker/${containerId}`)) continue;
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${entry}/status`, "utf8"));
      if (nspid?.[1].trim().split(/\s+/).at(-1) === "1") return Number(entry);
    } catch {
      // Gone while the list was read.
    }
  }
  throw new Error(`no process of nested container ${containerId} is PID 1 of its namespace`);
}

describe("CVM isolation, again from inside a privileged container nested in a CVM", { skip }, () => {
  let supervisor: CvmSupervisor;
  let environment: Environment;
  let target: IsolationTarget;
  const nested = `${marker}-nested`;

  before(async () => {
    supervisor = await startSupervisor(dataDir);
    environment = cvmEnvironment(image!);
    const { observation, log } = await buildCvm(supervisor, environment);
    assert.ok(observation.running, `the CVM is not running:\n${log.join("\n")}`);
    await loadIntoCvm(dataDir, environment, image!);
    // Docker in Docker: the nested container runs its own dockerd, so an engine answers the probe from inside.
    const started = await shIn(
      supervisor,
      environment,
      [
        `docker run -d --privileged --name ${nested} -v /home:/home -v /var/lib/docker ${image} dockerd`,
        `for i in $(seq 100); do docker exec ${nested} docker info >/dev/null 2>&1 && break; sleep 0.2; done`,
        `docker inspect --format '{{.Id}}' ${nested}`,
        `docker info --format '{{.ID}}'`,
      ].join("\n"),
    );
    assert.equal(started.code, 0, started.stderr);
    const [nestedId, innerEngineId] = started.stdout.trim().split("\n").slice(-2);
    const cvmEngine = new Dockerode({ socketPath: enginePaths(dataDir).socket });
    const container = await cvmEngine.getContainer(containerName(environment.id)).inspect();
    const volume = await cvmEngine.getVolume(homeVolumeName(environment.id)).inspect();
    target = {
      sh: (script) => execIn(supervisor, environment, ["docker", "exec", nested, "/bin/sh", "-c", script]),
      pid1OnNode: nodePidOfNested(nestedId),
      // What the node knows it by: the CVM's container (the nested one's cgroup sits under it).
      containerId: container.Id,
      homeOnNode: volume.Mountpoint,
      engines: [
        { id: (await hostDocker.info()).ID as string, socket: "/var/run/docker.sock", absentInside: false },
        { id: (await cvmEngine.info()).ID as string, socket: enginePaths(dataDir).socket, absentInside: true },
        // The CVM's own engine: the nested container's /var/run/docker.sock is its own dockerd's.
        { id: innerEngineId, socket: "/var/run/docker.sock", absentInside: false },
      ],
    };
  });

  after(async () => {
    if (environment) await supervisor?.remove(environment, { keepHome: false }).catch(() => undefined);
    await supervisor?.close();
  });

  test("it is privileged: every capability the CVM holds, and its own proc and sysfs mounted read-write", async () => {
    const ran = fields(
      await target.sh(
        [
          `echo capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)`,
          `echo sys=$(awk '$5 == "/sys" {print $6 " " $(NF-2) " " $NF}' /proc/self/mountinfo)`,
          `echo proc=$(awk '$5 == "/proc" {print $(NF-2)}' /proc/self/mountinfo)`,
        ].join("\n"),
      ),
    );
    const cvm = fields(
      await shIn(supervisor, environment, `echo capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)`),
    );
    assert.equal(ran.capeff, cvm.capeff, "the nested container holds other capabilities than the CVM");
    assert.ok(capabilities(ran.capeff).has(capSysAdmin));
    assert.match(ran.sys, /^rw,\S* sysfs rw$/, `its /sys is not a read-write sysfs: ${ran.sys}`);
    assert.equal(ran.proc, "proc");
  });

  for (const [name, check] of Object.entries(checks)) {
    test(name, { skip: notApplicable[name] ?? false }, () => check(target));
  }
});

/** Runs a script in a container of the host's engine as root, collecting its output. */
async function hostSh(container: Dockerode.Container, script: string): Promise<Ran> {
  const exec = await container.exec({ Cmd: ["/bin/sh", "-c", script], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on("data", (c: Buffer) => chunks.out.push(c));
  err.on("data", (c: Buffer) => chunks.err.push(c));
  hostDocker.modem.demuxStream(stream, out, err);
  await new Promise((resolve) => stream.on("end", resolve));
  const { ExitCode } = await exec.inspect();
  return {
    code: ExitCode ?? -1,
    stdout: Buffer.concat(chunks.out).toString("utf8"),
    stderr: Buffer.concat(chunks.err).toString("utf8"),
  };
}

/**
 * Every capability the engine (20.10) knows but SYS_RESOURCE (not in this
 * machine's bounding set) and SYS_TIME, SYS_BOOT, SYS_MODULE, left out so
 * that the control cannot harm the node it proves breakable.
 */
const controlCapabilities = [
  "CHOWN",
  "DAC_OVERRIDE",
  "DAC_READ_SEARCH",
  "FOWNER",
  "FSETID",
  "KILL",
  "SETGID",
  "SETUID",
  "SETPCAP",
  "LINUX_IMMUTABLE",
  "NET_BIND_SERVICE",
  "NET_BROADCAST",
  "NET_ADMIN",
  "NET_RAW",
  "IPC_LOCK",
  "IPC_OWNER",
  "SYS_RAWIO",
  "SYS_CHROOT",
  "SYS_PTRACE",
  "SYS_PACCT",
  "SYS_ADMIN",
  "SYS_NICE",
  "SYS_TTY_CONFIG",
  "MKNOD",
  "LEASE",
  "AUDIT_WRITE",
  "AUDIT_CONTROL",
  "SETFCAP",
  "MAC_OVERRIDE",
  "MAC_ADMIN",
  "SYSLOG",
  "WAKE_ALARM",
  "BLOCK_SUSPEND",
  "AUDIT_READ",
];

describe("the isolation checks fail against a container without isolation (the control)", { skip }, () => {
  let container: Dockerode.Container;
  let target: IsolationTarget;
  let home: string;

  before(async () => {
    home = mkdtempSync(join(tmpdir(), "cvm-isolation-control-"));
    const rootDevice = readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .find((line) => line.split(" ")[4] === "/")!
      .split(" - ")[1]
      .split(" ")[1];
    container = await hostDocker.createContainer({
      name: `${marker}-control`,
      Image: image,
      Entrypoint: ["sleep", "infinity"],
      Cmd: [],
      HostConfig: {
        CapAdd: controlCapabilities,
        SecurityOpt: ["seccomp=unconfined", "apparmor=unconfined"],
        // What --privileged (or --security-opt systempaths=unconfined) leaves unmasked.
        MaskedPaths: [],
        ReadonlyPaths: [],
        PidMode: "host",
        CgroupnsMode: "host",
        Devices: existsSync(rootDevice)
          ? [{ PathOnHost: rootDevice, PathInContainer: rootDevice, CgroupPermissions: "rwm" }]
          : [],
        Binds: ["/var/run/docker.sock:/var/run/docker.sock", `${home}:/home`],
        NetworkMode: "host",
      } as Dockerode.HostConfig,
    });
    await container.start();
    const info = await container.inspect();
    target = {
      sh: (script) => hostSh(container, script),
      pid1OnNode: info.State.Pid,
      containerId: info.Id,
      homeOnNode: home,
      engines: [{ id: (await hostDocker.info()).ID as string, socket: "/var/run/docker.sock", absentInside: false }],
    };
  });

  after(async () => {
    await container?.remove({ force: true, v: true }).catch(() => undefined);
    if (home) rmSync(home, { recursive: true, force: true });
  });

  for (const [name, check] of Object.entries(checks)) {
    test(`breaks: ${name}`, { skip: notApplicable[name] ?? false }, async (t) => {
      const failure = await check(target).then(
        () => undefined,
        (error: Error) => error,
      );
      assert.ok(failure, "the check passed against a container without isolation: it could not catch a breach");
      assert.equal(failure.name, "AssertionError", String(failure.stack));
      t.diagnostic(`caught: ${failure.message.split("\n")[0]}`);
    });
  }
});
