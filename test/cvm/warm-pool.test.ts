/**
 * A CVM claimed from a warm pool is indistinguishable from one built cold,
 * from inside: real CVMs through the supervisor on this machine, one built
 * cold and one filled into a pool then claimed with the same request, and
 * every fact a user could tell them apart by compared: hostname (the kernel's,
 * /etc/hostname, /etc/hosts, systemd-hostnamed's over D-Bus), machine id
 * (the file, systemd over D-Bus with busctl, journald's, hostnamed's), home
 * contents, uid map, limits (CPUs, memory, processes: the pool's member is
 * filled under other settings than the claim's), the disks of /, /home and
 * the inner Docker, systemd's state, and a
 * journal with nothing in it of the pool's life. Then a restart keeps the
 * claim's name, and a drained member leaves nothing on the node.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import Dockerode from "dockerode";
import type { Environment } from "../../src/core/environment.js";
import { memberEnvironment } from "../../src/core/warm-pool.js";
import { containerName } from "../../src/supervisor/cvm-container.js";
import { enginePaths } from "../../src/supervisor/engine.js";
import type { CvmSupervisor } from "../../src/supervisor/index.js";
import * as fixtures from "../../src/testing/fixtures.js";
import {
  buildCvm,
  cvmBuildContext,
  cvmEnvironment,
  cvmImages,
  missingImages,
  runId,
  scratchDataDir,
  shIn,
  startSupervisor,
  traces,
} from "../harness/cvm.js";
import { removeDataDir } from "../harness/server.js";

const dataDir = `${scratchDataDir}-pool`;
let supervisor: CvmSupervisor;

before(async () => {
  if (!missingImages) supervisor = await startSupervisor(dataDir);
});

after(async () => {
  if (!supervisor) return;
  for (const member of await supervisor.pool.members()) await supervisor.pool.drain(member);
  for (const workload of await supervisor.listWorkloads()) await supervisor.removeWorkload(workload.ref);
  await supervisor.close();
  removeDataDir(dataDir);
});

const context = () => cvmBuildContext({ settings: fixtures.settings({ cvmEnabled: true, runtime: "userns" }) });
/** The settings of the create: a process limit other than the one the member was filled under. */
const createLimits = { limits: { pids: 3000 } };
const createContext = () =>
  cvmBuildContext({ settings: fixtures.settings({ cvmEnabled: true, runtime: "userns", ...createLimits }) });

/** Everything a user inside could tell two CVMs apart by, each from a command's output. */
const probes = {
  hostname: "uname -n",
  etcHostname: "cat /etc/hostname",
  hostsName: "awk '$1 !~ /^(127|::|fe00|ff0)/ {print $2}' /etc/hosts",
  hostnamed: "hostnamectl --static",
  machineId: "cat /etc/machine-id",
  systemdMachineId:
    "busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.DBus.Peer GetMachineId | tr -d '\"' | cut -d' ' -f2",
  hostnamedMachineId: "hostnamectl | sed -n 's/^ *Machine ID: //p'",
  journalMachineIds: "journalctl -o export --no-pager | sed -n 's/^_MACHINE_ID=//p' | sort -u",
  journalHostnames: "journalctl -o export --no-pager | sed -n 's/^_HOSTNAME=//p' | sort -u",
  home: "cd /home && find . -printf '%p %u:%g %m %s\\n' | sort && find . -type f -exec md5sum {} + | sort",
  uidMap: "cat /proc/self/uid_map",
  memory: "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
  cpu: "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max",
  pids: "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
  dockerDisk: "df -k --output=size,fstype /var/lib/docker | tail -1",
  homeDisk: "df -k --output=size,fstype /home | tail -1",
  rootDisk: "df -k --output=size,fstype / | tail -1",
  systemd: "systemctl is-system-running",
  dockerAnswers: "docker version --format '{{.Server.Os}}'",
};
type Facts = Record<keyof typeof probes, string>;

async function facts(environment: Environment): Promise<Facts> {
  const found: Partial<Facts> = {};
  for (const [name, command] of Object.entries(probes) as [keyof typeof probes, string][]) {
    const ran = await shIn(supervisor, environment, command);
    found[name] = ran.stdout.trim();
  }
  return found as Facts;
}

test("a CVM claimed from a warm pool is indistinguishable from one built cold", {
  skip: missingImages,
  timeout: 900_000,
}, async () => {
  const image = cvmImages()?.systemdDocker as string;
  const request = { cpu: 1, memoryGiB: 1.25, diskGiB: 10 };
  const cold = cvmEnvironment(image, { name: "alpha", ...request });
  const built = await buildCvm(supervisor, cold, createLimits);
  assert.equal(built.observation.systemd, "running", built.log.join("\n"));

  const member = fixtures.poolMember(fixtures.warmPool({ image, cpu: 2, memoryGiB: 2, diskGiB: 10, count: 1 }), {
    id: `${runId}-pool1`,
    runtimeSetting: "userns",
    state: "filling",
  });
  const ready = await supervisor.pool.fill(member, context());
  assert.equal(ready.state, "ready");
  assert.ok(ready.imageVersion?.startsWith("sha256:"), `the member knows its image's digest: ${ready.imageVersion}`);
  // While it waits it is the pool's: not a workload of any environment, so never an orphan.
  assert.ok(!(await supervisor.listWorkloads()).some((w) => w.environmentId === member.id));
  assert.deepEqual(
    (await supervisor.pool.members()).map((m) => [m.id, m.state]),
    [[member.id, "ready"]],
  );
  const waiting = memberEnvironment(member, "userns");
  const pooled = await facts(waiting);
  // Its life in the pool leaves a journal under its own name and machine id.
  assert.equal(pooled.hostname, waiting.name);
  assert.match(pooled.journalHostnames, new RegExp(waiting.name));

  const claimed = cvmEnvironment(image, { id: member.id, name: "beta", ...request });
  const claimContext = createContext();
  const observation = await supervisor.pool.claim(ready, claimed, claimContext);
  assert.deepEqual(observation, {
    exists: true,
    running: true,
    runtime: "userns",
    systemd: "running",
    failedUnits: [],
    docker: "answering",
  });
  assert.deepEqual(claimContext.states, ["starting"]);
  assert.ok(
    (await supervisor.listWorkloads()).some((w) => w.environmentId === member.id),
    "now the environment's",
  );

  // Reported running only once journald writes under the new name and machine id: read at once, no waiting.
  assert.ok(
    claimContext.lines.some((line) => line.includes("its journal begun anew (its first entry read back)")),
    claimContext.lines.join("\n"),
  );
  const [a, b] = [await facts(cold), await facts(claimed)];
  // Named as the environment everywhere a name is seen.
  for (const [environment, seen] of [
    [cold, a],
    [claimed, b],
  ] as const) {
    for (const key of ["hostname", "etcHostname", "hostsName", "hostnamed", "journalHostnames"] as const) {
      assert.equal(seen[key], environment.name, `${environment.name}: ${key}`);
    }
  }
  // A machine id of its own, the same wherever it is read, and not the one it had in the pool.
  for (const seen of [a, b]) {
    assert.match(seen.machineId, /^[0-9a-f]{32}$/);
    for (const key of ["systemdMachineId", "hostnamedMachineId", "journalMachineIds"] as const) {
      assert.equal(seen[key], seen.machineId, key);
    }
  }
  assert.notEqual(b.machineId, pooled.machineId);
  assert.notEqual(b.machineId, a.machineId);
  // Nothing of the pool's life in its journal: neither its name nor its old machine id.
  const journal = (await shIn(supervisor, claimed, "journalctl -o export --no-pager")).stdout;
  assert.ok(!journal.includes(waiting.name), "the pool's name is not in the journal");
  assert.ok(!journal.includes(pooled.machineId), "the pool's machine id is not in the journal");
  // The rest is the same as a cold build's of the same request.
  for (const key of [
    "home",
    "uidMap",
    "memory",
    "cpu",
    "pids",
    "dockerDisk",
    "homeDisk",
    "rootDisk",
    "systemd",
    "dockerAnswers",
  ] as const) {
    assert.equal(b[key], a[key], key);
  }
  assert.equal(b.pids, "3000");
  assert.notEqual(pooled.pids, "3000", "the claim set the process limit of the create's settings");
  assert.ok(
    claimContext.lines.some((line) => line.startsWith("processes:")),
    "the claim's log names its process limit",
  );
  assert.equal(b.memory, String(1.25 * 1024 ** 3));
  assert.match(b.cpu, /^100000\s+100000$/);
  assert.equal(b.systemd, "running");

  // A restart boots it under its own name again (the engine would write the pool's back).
  await supervisor.stop(claimed, 20);
  const restarted = await supervisor.start(claimed, context());
  assert.equal(restarted.systemd, "running");
  const again = await facts(claimed);
  for (const key of ["hostname", "etcHostname", "hostsName", "machineId"] as const)
    assert.equal(again[key], b[key], key);
});

test("a drained member leaves nothing on the node", { skip: missingImages, timeout: 600_000 }, async () => {
  const image = cvmImages()?.systemdDocker as string;
  const member = fixtures.poolMember(fixtures.warmPool({ image, cpu: 1, memoryGiB: 1, diskGiB: 10, count: 1 }), {
    id: `${runId}-pool2`,
    runtimeSetting: "userns",
    state: "filling",
  });
  await supervisor.pool.fill(member, context());
  const engine = new Dockerode({ socketPath: enginePaths(dataDir).socket });
  const { Id } = await engine.getContainer(containerName(member.id)).inspect();
  await supervisor.pool.drain(member);
  assert.deepEqual(await supervisor.pool.members(), []);
  assert.equal((await supervisor.observe(memberEnvironment(member, "userns"))).exists, false);
  assert.deepEqual(await traces(Id), []);
  const volumes = (await engine.listVolumes()).Volumes ?? [];
  assert.deepEqual(
    volumes.map((v) => v.Name).filter((name) => name.includes(member.id)),
    [],
  );
});
