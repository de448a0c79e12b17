/**
 * The CVM runtime end to end, on a real engine: cvm's own userns-remapped
 * dockerd, real images from the local registry, the supervisor called the
 * way the docker provider calls it.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import Dockerode from "dockerode";
import type { CvmSupervisor } from "../../src/supervisor/index.js";
import {
  cvmBuildContext,
  cvmEnvironment,
  cvmImages,
  scratchDataDir as dataDir,
  execIn,
  missingImages,
  shIn,
  startSupervisor,
  traces,
} from "../harness/cvm.js";
import { removeDataDir } from "../harness/server.js";

const engine = new Dockerode({ socketPath: `${dataDir}/engine/docker.sock` });
let supervisor: CvmSupervisor;

before(async () => {
  if (missingImages) return;
  supervisor = await startSupervisor(dataDir);
});

after(async () => {
  if (!supervisor) return;
  for (const workload of await supervisor.listWorkloads()) await supervisor.removeWorkload(workload.ref);
  await supervisor.close();
  removeDataDir(dataDir);
});

const image = cvmImages();

test("a CVM from the systemd+docker image: systemd PID 1 running, nested docker on overlay2, limits inside", {
  skip: missingImages,
  timeout: 600_000,
}, async () => {
  const env = cvmEnvironment(image!.systemdDocker, { cpu: 1.5, memoryGiB: 1.25 });
  const context = cvmBuildContext();
  const observation = await supervisor.build(env, context);
  assert.deepEqual(observation, {
    exists: true,
    running: true,
    runtime: "userns",
    systemd: "running",
    failedUnits: [],
    docker: "answering",
  });
  assert.deepEqual(context.states, ["pulling", "creating", "starting"]);
  const log = context.lines.join("\n");
  for (const expected of [
    /isolation runtime: userns/,
    /pull: .* (pulled from its registry|already in cvm's engine)/,
    /entrypoint: \/sbin\/init found \(\/sbin\/init -> .*systemd\)/,
    /cgroups: \d+ directories handed to the CVM's root \(uid 100000\)/,
    /release: .*systemd is PID 1/,
    /systemd: running/,
    /docker: its socket listens; dockerd starts on the first call \(docker\.socket\)/,
    /disk limit: \/var\/lib\/docker is limited to 10 GiB \(an ext4 disk of its own\); \/home is limited to 10 GiB \(volume .* on an ext4 disk of its own\); the root filesystem is limited to 10 GiB/,
    /AppArmor/,
  ]) {
    assert.match(log, expected);
  }

  assert.equal((await execIn(supervisor, env, ["ps", "-p", "1", "-o", "comm="])).stdout.trim(), "systemd");
  assert.equal((await execIn(supervisor, env, ["systemctl", "is-system-running"])).stdout.trim(), "running");
  // Ready without the Docker daemons: systemd listens on Docker's socket, and the first call starts them.
  const daemons = "for d in dockerd containerd; do pgrep -x $d >/dev/null && echo $d; done; true";
  assert.equal((await shIn(supervisor, env, daemons)).stdout.trim(), "", "no Docker daemon runs before the first call");
  assert.equal((await execIn(supervisor, env, ["systemctl", "is-active", "docker.socket"])).stdout.trim(), "active");
  assert.equal((await supervisor.observe(env)).docker, "answering", "observed: Docker answers through its socket");
  assert.equal((await shIn(supervisor, env, daemons)).stdout.trim(), "", "observing it started no daemon");
  // The first call of all is a run of the baked image: it starts Docker, which has loaded the image before answering.
  const nested = await execIn(supervisor, env, ["docker", "run", "--rm", "--pull=never", "cvm/hello", "echo", "ok"]);
  assert.equal(nested.stdout.trim(), "ok", nested.stderr);
  assert.equal((await shIn(supervisor, env, daemons)).stdout.trim(), "dockerd\ncontainerd");
  assert.match(
    (await execIn(supervisor, env, ["docker", "version", "-f", "{{.Server.Version}}"])).stdout.trim(),
    /^\d+\.\d+/,
  );
  assert.equal((await execIn(supervisor, env, ["docker", "info", "-f", "{{.Driver}}"])).stdout.trim(), "overlay2");
  // BuildKit's read-only binds work on that data (they fail when its mount carries nosuid/nodev).
  const build = await execIn(supervisor, env, [
    "sh",
    "-c",
    "mkdir -p /tmp/b && printf 'FROM cvm/hello\\nRUN echo built > /built\\n' > /tmp/b/Dockerfile && " +
      "DOCKER_BUILDKIT=1 docker build -q -t built /tmp/b >/dev/null && docker run --rm built cat /built",
  ]);
  assert.equal(build.stdout.trim(), "built", build.stderr);
  // The inner Docker's data is on a disk of its own, of the size asked for.
  const df = await execIn(supervisor, env, ["df", "-k", "--output=size,fstype", "/var/lib/docker"]);
  const [sizeKiB, fsType] = df.stdout.trim().split("\n")[1].trim().split(/\s+/);
  assert.equal(fsType, "ext4");
  assert.ok(Math.abs(Number(sizeKiB) / 1024 ** 2 - 10) < 0.5, `/var/lib/docker is ${sizeKiB} KiB`);

  // Root inside is an unprivileged range on the node.
  assert.match((await execIn(supervisor, env, ["cat", "/proc/self/uid_map"])).stdout, /^\s*0\s+100000\s+65536\s*$/);
  // Limits as the CVM sees them in its own cgroup (v1 here; v2 names are the fallbacks).
  const memory = await execIn(supervisor, env, [
    "sh",
    "-c",
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
  ]);
  assert.equal(memory.stdout.trim(), String(1.25 * 1024 ** 3));
  const cpu = await execIn(supervisor, env, [
    "sh",
    "-c",
    "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max",
  ]);
  assert.match(cpu.stdout.trim(), /^150000\s+100000$/);

  // The CVM cannot raise its own limits: the limit files stay the node root's.
  const raise = await execIn(supervisor, env, [
    "sh",
    "-c",
    "echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo max > /sys/fs/cgroup/memory.max",
  ]);
  assert.notEqual(raise.code, 0, "writing its own memory limit must fail");

  // Exit codes and stderr come back as they are.
  const failing = await execIn(supervisor, env, ["sh", "-c", "echo oops >&2; exit 7"]);
  assert.equal(failing.code, 7);
  assert.equal(failing.stderr.trim(), "oops");

  const seen = await supervisor.observe(env);
  assert.equal(seen.systemd, "running");
  assert.equal(seen.docker, "answering");

  await supervisor.remove(env, { keepHome: false });
});

test("an image without /sbin/init starts under the minimal init: commands run, systemd unavailable", {
  skip: missingImages,
  timeout: 300_000,
}, async () => {
  const env = cvmEnvironment(image!.plain);
  const context = cvmBuildContext();
  const observation = await supervisor.build(env, context);
  assert.equal(observation.running, true);
  assert.equal(observation.systemd, "unavailable");
  assert.equal(observation.docker, "absent");
  assert.match(context.lines.join("\n"), /entrypoint: no usable \/sbin\/init \(\S+ does not exist\)/);
  assert.equal((await execIn(supervisor, env, ["ps", "-p", "1", "-o", "comm="])).stdout.trim(), "cvm-reaper");
  assert.equal((await execIn(supervisor, env, ["sh", "-c", "echo hi; id -u"])).stdout, "hi\n0\n");
  assert.equal((await supervisor.observe(env)).systemd, "unavailable");

  // The reaper stops at once on the CVM's stop signal.
  const stopping = Date.now();
  await supervisor.stop(env, 10);
  assert.ok(Date.now() - stopping < 5000, `stop took ${Date.now() - stopping} ms`);
  assert.equal((await supervisor.observe(env)).running, false);
  await supervisor.remove(env, { keepHome: false });
});

test("an image whose /sbin/init is a dangling link counts as having none", {
  skip: missingImages,
  timeout: 300_000,
}, async () => {
  const env = cvmEnvironment(image!.danglingInit);
  const context = cvmBuildContext();
  const observation = await supervisor.build(env, context);
  assert.equal(observation.systemd, "unavailable");
  assert.match(context.lines.join("\n"), /entrypoint: no usable \/sbin\/init \(.*dangling/);
  assert.equal((await execIn(supervisor, env, ["echo", "runs"])).stdout, "runs\n");
  await supervisor.remove(env, { keepHome: false });
});

test("stop lets systemd shut down cleanly; start brings it back; rebuild keeps home and, when asked, inner images", {
  skip: missingImages,
  timeout: 600_000,
}, async () => {
  const env = cvmEnvironment(image!.systemdDocker);
  await supervisor.build(env, cvmBuildContext());
  await execIn(supervisor, env, ["sh", "-c", "echo kept > /home/marker && docker tag cvm/hello keepme:1"]);
  const failing =
    "[Unit]\nDescription=fails on purpose\n[Service]\nType=oneshot\nExecStart=/bin/false\n[Install]\nWantedBy=multi-user.target\n";
  const enabled = await execIn(supervisor, env, [
    "sh",
    "-c",
    `printf '${failing}' > /etc/systemd/system/cvm-rt-fails.service && systemctl enable cvm-rt-fails.service`,
  ]);
  assert.equal(enabled.code, 0, enabled.stderr);

  const stopping = Date.now();
  await supervisor.stop(env, 30);
  const stopSeconds = (Date.now() - stopping) / 1000;
  const stopped = await engine.getContainer(`cvm-env-${env.id}`).inspect();
  assert.equal(stopped.State.Running, false);
  // Killed at the timeout would be 137 after 30 s; systemd halting on SIGRTMIN+3 exits by itself.
  assert.ok(stopSeconds < 25, `stop took ${stopSeconds} s: systemd did not shut down by itself`);
  assert.notEqual(stopped.State.ExitCode, 137);

  const restart = cvmBuildContext();
  const again = await supervisor.start(env, restart);
  assert.equal(again.systemd, "degraded");
  assert.deepEqual(again.failedUnits, ["cvm-rt-fails.service"]);
  assert.equal(again.docker, "answering");
  assert.match(restart.lines.join("\n"), /systemd: failed units: cvm-rt-fails.service/);
  assert.equal((await execIn(supervisor, env, ["cat", "/home/marker"])).stdout, "kept\n");
  // The journal is on disk from each boot's first line, as on a VM: both boots are there, each from its start.
  const journal = await execIn(supervisor, env, [
    "sh",
    "-c",
    "journalctl --list-boots --no-pager --quiet | wc -l; journalctl -b -1 -o cat --no-pager | head -1; test -e /run/log/journal || echo none in /run; cat /proc/sys/kernel/random/boot_id",
  ]);
  const [boots, first, run, bootId] = journal.stdout.split("\n");
  assert.deepEqual([boots, first, run], ["2", "Journal started", "none in /run"], journal.stderr);
  assert.notEqual(bootId, readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim(), "a boot id of its own");

  await supervisor.discard(env, { keepDockerData: true });
  assert.equal((await supervisor.build(env, cvmBuildContext())).systemd, "running", "a rebuild starts from the image");
  assert.equal((await execIn(supervisor, env, ["cat", "/home/marker"])).stdout, "kept\n", "home survives a rebuild");
  const kept = await execIn(supervisor, env, ["docker", "image", "inspect", "-f", "ok", "keepme:1"]);
  assert.equal(kept.stdout.trim(), "ok", "inner images survive a rebuild with keepDockerData");

  await supervisor.discard(env, { keepDockerData: false });
  await supervisor.build(env, cvmBuildContext());
  const gone = await execIn(supervisor, env, ["docker", "image", "inspect", "-f", "ok", "keepme:1"]);
  assert.notEqual(gone.code, 0, "inner images are dropped by a rebuild without keepDockerData");
  assert.equal((await execIn(supervisor, env, ["cat", "/home/marker"])).stdout, "kept\n");
  await supervisor.remove(env, { keepHome: false });
});

test("a build aborted while systemd boots stops at once", { skip: missingImages, timeout: 300_000 }, async () => {
  const env = cvmEnvironment(image!.systemdDocker);
  const context = cvmBuildContext();
  const controller = new AbortController();
  context.signal = controller.signal;
  const originalLog = context.log;
  context.log = async (text) => {
    await originalLog(text);
    if (text.startsWith("release:")) controller.abort(new Error("the user stopped it"));
  };
  const begun = Date.now();
  await assert.rejects(supervisor.build(env, context), /the user stopped it/);
  assert.ok(Date.now() - begun < 60_000);
  await supervisor.remove(env, { keepHome: false });
});

test("remove leaves nothing: no container, cgroup directory, mount, process or volume", {
  skip: missingImages,
  timeout: 300_000,
}, async () => {
  const env = cvmEnvironment(image!.systemdDocker);
  await supervisor.build(env, cvmBuildContext());
  const info = await engine.getContainer(`cvm-env-${env.id}`).inspect();
  const pid = info.State.Pid;
  const merged = (info.GraphDriver.Data as Record<string, string>).MergedDir;
  assert.ok((await traces(info.Id)).length > 0, "a running CVM has cgroup directories to find");

  await supervisor.remove(env, { keepHome: false });

  await assert.rejects(engine.getContainer(info.Id).inspect(), /no such container/i);
  assert.deepEqual(await traces(info.Id), []);
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  assert.ok(!mountinfo.includes(merged), "the CVM's root filesystem is unmounted");
  await assert.rejects(readFile(`/proc/${pid}/cmdline`), "its init is gone");
  const disk = `${dataDir}/engine/disks/cvm-docker-${env.id}`;
  assert.ok(!mountinfo.includes(disk), "the inner Docker's disk is unmounted");
  await assert.rejects(readFile(`${disk}.ext4`), "and deleted");
  const volumes = (await engine.listVolumes()).Volumes?.map((v) => v.Name) ?? [];
  assert.ok(!volumes.some((name) => name.endsWith(env.id)), `volumes left: ${volumes.join(", ")}`);
  assert.deepEqual(
    (await supervisor.listWorkloads()).filter((w) => w.environmentId === env.id),
    [],
  );
});

test("sysbox end to end", {
  skip: "sysbox-runc is not installable here (not in Debian's packages); its create request is unit-tested in src/supervisor/cvm-container.test.ts",
}, () => {});
