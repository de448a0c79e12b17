/**
 * Docker as in a VM, from inside a real CVM made by cvm's own supervisor:
 * `docker run --privileged`, Docker in Docker three levels deep, host
 * networking, docker-compose, a systemd node (the building block of kind,
 * k3d and minikube), FUSE, TUN, and foreign-architecture binaries through
 * the CVM's own binfmt_misc. What each of these may reach is checked in
 * isolation.test.ts, from inside a privileged nested container too.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, realpathSync } from "node:fs";
import { networkInterfaces, release, totalmem } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import type { Environment } from "../../src/core/environment.js";
import { enginePaths } from "../../src/supervisor/engine.js";
import type { CvmSupervisor } from "../../src/supervisor/index.js";
import { binfmtPerUserNamespace } from "../../src/supervisor/multi-arch.js";
import * as fixtures from "../../src/testing/fixtures.js";
import {
  buildCvm,
  cvmBuildContext,
  cvmEnvironment,
  fixtureDataDir,
  loadIntoCvm,
  type Ran,
  shIn,
  startSupervisor,
} from "../harness/cvm.js";

const run = promisify(execFile);
const image = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
const systemdImage = process.env.CVM_TEST_IMAGE_SYSTEMD;
const arm64Image = process.env.CVM_TEST_IMAGE_HELLO_ARM64;
const skip =
  image && systemdImage
    ? false
    : "CVM_TEST_IMAGE_SYSTEMD(_DOCKER) are not set: run through `npm test`, which builds them";
const dataDir = fixtureDataDir("nested");

/** A script's output, failing the test with everything it printed when it exits non-zero. */
function ok(ran: Ran, what: string): string {
  assert.equal(ran.code, 0, `${what} failed (exit ${ran.code}):\n${ran.stdout}${ran.stderr}`);
  return ran.stdout;
}

/** The node's binfmt_misc entries, read through a mount of its own that goes with its mount namespace. */
async function nodeBinfmt(): Promise<string> {
  const { stdout } = await run("unshare", [
    "--mount",
    "sh",
    "-c",
    'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && for f in /proc/sys/fs/binfmt_misc/*; do echo "== $f"; cat "$f"; done',
  ]);
  return stdout;
}

describe("Docker as in a VM, inside a real CVM", { skip }, () => {
  let supervisor: CvmSupervisor;
  let environment: Environment;
  let buildLog: string[];
  let binfmtBefore: string;
  const sh = (script: string) => shIn(supervisor, environment, script);

  before(async () => {
    binfmtBefore = await nodeBinfmt();
    supervisor = await startSupervisor(dataDir);
    environment = cvmEnvironment(image!);
    const built = await buildCvm(supervisor, environment);
    buildLog = built.log;
    assert.equal(built.observation.systemd, "running", `the CVM did not reach running:\n${buildLog.join("\n")}`);
    // Both images for the nested tests: a CVM cannot reach the node's registry.
    await loadIntoCvm(dataDir, environment, image!);
    await loadIntoCvm(dataDir, environment, systemdImage!);
    await loadIntoCvm(dataDir, environment, arm64Image!);
  });

  after(async () => {
    if (environment) await supervisor?.remove(environment, { keepHome: false }).catch(() => undefined);
    await supervisor?.close();
  });

  test("docker run --privileged mounts its own sysfs and proc, and gets devices only from the CVM", async () => {
    assert.ok(
      buildLog.some((line) => line.includes("nesting: /sys is the CVM's own sysfs with a writable super block")),
      buildLog.join("\n"),
    );
    const out = ok(
      await sh(
        [
          `docker run --rm --privileged cvm/hello sh -c 'cat /proc/self/mountinfo; for f in /dev/* /dev/*/*; do [ -b "$f" ] && echo "block $f"; done; true'`,
          `docker run --rm --privileged --device /dev/fuse --device /dev/net/tun cvm/hello sh -c '[ -c /dev/fuse ] && [ -c /dev/net/tun ] && echo passed-through'`,
        ].join(" && "),
      ),
      "privileged nested containers",
    );
    assert.match(out, / \/sys rw,\S* - sysfs sysfs rw$/m, "no read-write sysfs at /sys");
    assert.match(out, / \/proc rw,\S* - proc proc rw$/m, "no proc at /proc");
    assert.doesNotMatch(out, /^block /m, "a block device is visible in a privileged nested container");
    assert.match(out, /^passed-through$/m, "the CVM's FUSE and TUN devices do not reach a nested container");
  });

  test("Docker in Docker, three levels: the CVM's dockerd, a privileged container running dockerd, a container under it", async () => {
    const out = ok(
      await sh(
        [
          `docker run -d --privileged --name dind -v /var/lib/docker ${image} dockerd > /dev/null`,
          `for i in $(seq 150); do docker exec dind docker info > /dev/null 2>&1 && break; sleep 0.2; done`,
          `docker exec dind docker load -q -i /usr/share/cvm/images/hello.tar`,
          `docker exec dind docker info --format 'driver={{.Driver}}'`,
          `docker exec dind docker run --rm cvm/hello echo level-three`,
          `docker rm -f dind > /dev/null`,
        ].join(" && "),
      ),
      "Docker in Docker",
    );
    assert.match(out, /^driver=overlay2$/m, "the second level's dockerd does not use overlay2 on its volume");
    assert.match(out, /^level-three$/m);
  });

  test("docker run --network host sees the CVM's network devices, not the node's", async () => {
    const out = ok(
      await sh(
        [
          `echo cvm=$(cat /sys/class/net/*/address | sort | tr '\\n' ' ')`,
          `echo nested=$(docker run --rm --network host cvm/hello sh -c 'cat /sys/class/net/*/address' | sort | tr '\\n' ' ')`,
        ].join("\n"),
      ),
      "host networking",
    );
    const [cvm, nested] = ["cvm", "nested"].map((key) => new RegExp(`^${key}=(.*)$`, "m").exec(out)![1].trim());
    assert.ok(nested.length > 0, out);
    assert.equal(nested, cvm, "a --network host container does not share the CVM's network namespace");
    const nodeMacs = Object.values(networkInterfaces())
      .flat()
      .map((address) => address?.mac)
      .filter((mac) => mac && mac !== "00:00:00:00:00:00");
    for (const mac of nodeMacs) assert.ok(!nested.includes(mac!), `the node's interface ${mac} is visible`);
  });

  test("docker-compose brings up services that find each other by name", async () => {
    const compose = [
      "services:",
      "  web:",
      "    image: cvm/hello",
      '    command: ["sleep", "60"]',
      "  client:",
      "    image: cvm/hello",
      '    command: ["busybox", "ping", "-c", "1", "-W", "5", "web"]',
      "    depends_on: [web]",
    ].join("\n");
    const out = ok(
      await sh(
        [
          "mkdir -p /root/app && cd /root/app",
          `printf '%s\\n' 'version: "3"' '${compose.split("\n").join("' '")}' > docker-compose.yml`,
          "docker-compose up -d web",
          "docker-compose run --rm client",
          "docker-compose down",
        ].join(" && "),
      ),
      "docker-compose",
    );
    assert.match(out, /1 packets transmitted, 1 packets received/);
  });

  test("a systemd node (the project's debian-systemd image as a privileged nested container) boots to running", async () => {
    const out = ok(
      await sh(
        [
          `docker run -d --privileged --name node --tmpfs /run --tmpfs /run/lock ${systemdImage} /sbin/init > /dev/null`,
          // Until systemd answers on its bus, then until it has finished booting.
          `for i in $(seq 600); do s=$(docker exec node systemctl is-system-running 2>/dev/null); case "$s" in running|degraded|maintenance) break;; esac; sleep 0.2; done`,
          `echo state=$s`,
          `docker exec node systemctl --failed --no-legend --plain`,
          `echo pid1=$(docker exec node cat /proc/1/comm)`,
          `docker rm -f node > /dev/null`,
        ].join("; "),
      ),
      "systemd node",
    );
    assert.match(out, /^pid1=systemd$/m);
    assert.match(out, /^state=running$/m, `the nested systemd did not reach running:\n${out}`);
  });

  test("with LXCFS (the default) /proc shows the CVM's own memory, so a fresh proc in a user namespace of the default user's own is refused", async () => {
    const out = ok(await sh("head -1 /proc/meminfo"), "reading meminfo");
    assert.doesNotMatch(out, new RegExp(`\\b${Math.round(totalmem() / 1024)} kB`), "the node's memory");
    const refused = await sh(`su dev -c 'unshare --user --map-root-user --pid --fork --mount-proc true'`);
    assert.notEqual(refused.code, 0, "LXCFS's files over /proc lock it for nested user namespaces");
    // The kernel's refusal of the proc mount, not a missing tool.
    assert.match(`${refused.stdout}${refused.stderr}`, /mount \/proc failed: Operation not permitted/);
  });

  test("FUSE: a bindfs mount reads and writes, for root and for the default user", async () => {
    const out = ok(
      await sh(
        [
          "mkdir -p /srv/src /srv/view && echo from-source > /srv/src/a && bindfs /srv/src /srv/view",
          "echo root-read=$(cat /srv/view/a)",
          "echo through-view > /srv/view/b && echo root-write=$(cat /srv/src/b)",
          "umount /srv/view",
          `su dev -c 'mkdir -p ~/src ~/view && echo mine > ~/src/x && bindfs --no-allow-other ~/src ~/view && echo user-read=$(cat ~/view/x) && echo w > ~/view/y && echo user-write=$(cat ~/src/y) && fusermount -u ~/view'`,
        ].join(" && "),
      ),
      "FUSE",
    );
    assert.match(out, /^root-read=from-source$/m);
    assert.match(out, /^root-write=through-view$/m);
    assert.match(out, /^user-read=mine$/m);
    assert.match(out, /^user-write=w$/m);
  });

  test("TUN: devices made with ip tuntap and brought up carry a ping between two addresses", async () => {
    // tun0 here, tun1 in a network namespace of its own; socat copies packets between the two devices.
    const out = ok(
      await sh(
        [
          "set -e",
          "ip tuntap add dev tun0 mode tun",
          "ip tuntap add dev tun1 mode tun",
          "socat TUN,tun-name=tun0,tun-type=tun,iff-no-pi TUN,tun-name=tun1,tun-type=tun,iff-no-pi & relay=$!",
          "sleep 0.5",
          "ip netns add peer",
          "ip link set tun1 netns peer",
          "ip addr add 10.9.0.1/24 dev tun0 && ip link set tun0 up",
          "ip -n peer addr add 10.9.0.2/24 dev tun1 && ip -n peer link set tun1 up",
          "ip -br link show tun0",
          "ping -c 2 -W 5 10.9.0.2",
          // socat must be gone before tun0 goes: a device it still holds answers EBUSY.
          "kill $relay; wait $relay || true; ip netns del peer; ip tuntap del dev tun0 mode tun",
        ].join("\n"),
      ),
      "TUN",
    );
    assert.match(out, /^tun0\s+UP/m);
    assert.match(out, /2 packets transmitted, 2 received/);
  });

  test("multi-arch: the CVM's own binfmt_misc runs arm64 binaries and images; the node's is unchanged", async (t) => {
    if (!binfmtPerUserNamespace(release())) {
      t.skip(`kernel ${release()} has one binfmt_misc for the whole node (per user namespace since 6.7)`);
      return;
    }
    assert.ok(buildLog.some((line) => line.includes("multi-arch: the CVM has a binfmt_misc of its own")));
    const out = ok(
      await sh(
        [
          "cat /proc/sys/fs/binfmt_misc/qemu-aarch64",
          `id=$(docker create ${arm64Image}) && docker cp $id:/bin/busybox /root/busybox-arm64 && docker rm $id > /dev/null`,
          "echo machine=$(od -An -tx1 -j18 -N2 /root/busybox-arm64 | tr -d ' ')",
          "echo binary=$(/root/busybox-arm64 uname -m)",
          `echo image=$(docker run --rm ${arm64Image} uname -m 2>/dev/null)`,
        ].join(" && "),
      ),
      "arm64",
    );
    assert.match(out, /^enabled$/m, "qemu-aarch64 is not registered in the CVM");
    assert.match(out, /^machine=b700$/m, "the binary is not an arm64 ELF (e_machine 0xb7)");
    assert.match(out, /^binary=aarch64$/m);
    assert.match(out, /^image=aarch64$/m);
    assert.equal(await nodeBinfmt(), binfmtBefore, "the node's binfmt_misc changed");
  });

  test("stopped, its engine stopped with it, and started again: the CVM still nests privileged containers", async () => {
    await supervisor.stop(environment, 30);
    // With no CVM running the engine goes down with the supervisor and unmounts what it mounted, the reference
    // too; an engine this process adopted stays up, so the reference is taken away here as a reboot would.
    await supervisor.close();
    const reference = join(realpathSync(enginePaths(dataDir).root), "sysfs");
    await run("umount", ["-l", reference]).catch(() => undefined);
    assert.ok(
      !readFileSync("/proc/self/mountinfo", "utf8").includes(` ${reference} `),
      "the reference is still mounted",
    );
    supervisor = await startSupervisor(dataDir);
    const context = cvmBuildContext({ settings: fixtures.settings({ cvmEnabled: true, runtime: "userns" }) });
    const observation = await supervisor.start(environment, context);
    assert.equal(observation.systemd, "running", context.lines.join("\n"));
    assert.ok(
      context.lines.some((line) => line.includes("nesting: /sys is the CVM's own sysfs with a writable super block")),
      context.lines.join("\n"),
    );
    ok(await sh("docker run --rm --privileged cvm/hello true"), "a privileged nested container after the restart");
  });

  test("LXCFS turned off: /proc is whole, and a user namespace of the default user's own mounts proc (what rootless tools do)", async () => {
    const whole = cvmEnvironment(image!);
    try {
      const { log } = await buildCvm(supervisor, whole, { lxcfs: false });
      assert.ok(
        log.some((line) => line.includes("/proc: the kernel's own")),
        log.join("\n"),
      );
      const out = ok(
        await shIn(
          supervisor,
          whole,
          `su dev -c 'unshare --user --map-root-user --pid --fork --mount-proc sh -c "echo pid=\\$\\$; ps -e -o pid= | wc -l"'`,
        ),
        "unshare --mount-proc",
      );
      assert.match(out, /^pid=1$/m);
    } finally {
      await supervisor.remove(whole, { keepHome: false }).catch(() => undefined);
    }
  });

  test("FUSE and TUN turned off in the settings: neither device is there", async () => {
    const off = cvmEnvironment(image!);
    try {
      const { log } = await buildCvm(supervisor, off, { fuseDevice: false, tunDevice: false });
      const out = ok(await shIn(supervisor, off, "ls /dev; ls /dev/net 2>/dev/null; true"), "listing /dev");
      assert.doesNotMatch(out, /^fuse$/m);
      assert.doesNotMatch(out, /^tun$/m);
      assert.ok(log.some((line) => line.includes("FUSE: turned off in the infrastructure settings")));
      assert.ok(log.some((line) => line.includes("TUN: turned off in the infrastructure settings")));
    } finally {
      await supervisor.remove(off, { keepHome: false }).catch(() => undefined);
    }
  });
});
