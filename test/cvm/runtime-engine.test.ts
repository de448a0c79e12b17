/**
 * cvm's own engine and the supervisor's edges, on real engines: adopting an
 * engine that already answers, restarting one that died, close() leaving
 * nothing mounted, terminals (tty, resize, login shell), pull failures and
 * the copy from the node's engine.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, lstat, mkdtemp, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import Dockerode from "dockerode";
import pino from "pino";
import { CvmError } from "../../src/core/errors.js";
import { defaultDockerHost, dockerClient } from "../../src/docker/index.js";
import { CvmEngine, relocatedEngineRoot } from "../../src/supervisor/engine.js";
import type { CvmSupervisor } from "../../src/supervisor/index.js";
import {
  cvmBuildContext,
  cvmEnvironment,
  scratchDataDir as dataDir,
  execIn,
  missingImages,
  runId,
  startSupervisor,
} from "../harness/cvm.js";
import { removeDataDir } from "../harness/server.js";

const exec = promisify(execFile);
const engineSocket = `${dataDir}/engine/docker.sock`;
const engine = new Dockerode({ socketPath: engineSocket });
const host = dockerClient(process.env.CVM_TEST_HOST_DOCKER ?? defaultDockerHost);
const localOnly = `cvm-rt-local/${runId}:1`;
let supervisor: CvmSupervisor;

async function enginePid(): Promise<number> {
  return Number((await readFile(`${dataDir}/engine/dockerd.pid`, "utf8")).trim());
}

before(async () => {
  if (missingImages) return;
  supervisor = await startSupervisor(dataDir);
});

after(async () => {
  if (!supervisor) return;
  for (const workload of await supervisor.listWorkloads()) await supervisor.removeWorkload(workload.ref);
  await supervisor.close();
  await host
    .getImage(localOnly)
    .remove()
    .catch(() => undefined);
  removeDataDir(dataDir);
});

test("the engine starts on first use, root-only, and a second supervisor adopts it without stopping it", {
  skip: missingImages,
  timeout: 120_000,
}, async () => {
  assert.deepEqual(await supervisor.listWorkloads(), []);
  const { stdout } = await exec("stat", ["-c", "%a %U", `${dataDir}/engine`]);
  assert.equal(stdout.trim(), "710 root");
  const info = await engine.info();
  assert.match(info.SecurityOptions.join(" "), /userns/);
  assert.equal(info.Driver, "overlay2");

  const pid = await enginePid();
  const second = await startSupervisor(dataDir);
  assert.deepEqual(await second.listWorkloads(), []);
  await second.close();
  assert.equal(await enginePid(), pid);
  await engine.ping();
});

test("an engine that died is started again on next use", { skip: missingImages, timeout: 120_000 }, async () => {
  const pid = await enginePid();
  process.kill(pid, "SIGKILL");
  await sleep(2500); // past the health cache
  assert.deepEqual(await supervisor.listWorkloads(), []);
  const restarted = await enginePid();
  assert.notEqual(restarted, pid);
  await engine.ping();
});

test("terminals: tty with its size, the login shell by default, stdin, exit codes", {
  skip: missingImages,
  timeout: 300_000,
}, async () => {
  const env = cvmEnvironment(process.env.CVM_TEST_IMAGE_PLAIN as string);
  await supervisor.build(env, cvmBuildContext());

  const sized = await execIn(supervisor, env, ["stty", "size"], { tty: true, cols: 101, rows: 33 });
  assert.equal(sized.stdout.trim(), "33 101");

  const session = await supervisor.exec(env, { command: [], tty: true, cols: 80, rows: 24 });
  let output = "";
  session.onOutput((_stream, data) => {
    output += Buffer.from(data).toString();
  });
  await session.resize(120, 40);
  session.write("echo shell=$0 user=$(id -un) size=$(stty size)\nexit 3\n");
  assert.equal(await session.exited, 3);
  assert.match(output, /shell=-?(\/bin\/)?bash user=root size=40 120/);

  const piped = await supervisor.exec(env, { command: ["cat"], tty: false });
  let echoed = "";
  piped.onOutput((_stream, data) => {
    echoed += Buffer.from(data).toString();
  });
  piped.write("through stdin\n");
  piped.end();
  assert.equal(await piped.exited, 0);
  assert.equal(echoed, "through stdin\n");
  await supervisor.remove(env, { keepHome: false });
});

test("an image no registry has fails with a clear error", { skip: missingImages, timeout: 120_000 }, async () => {
  const registry = process.env.CVM_TEST_REGISTRY ?? "127.0.0.1:5000";
  const env = cvmEnvironment(`${registry}/cvm/no-such-image:${runId}`);
  await assert.rejects(
    supervisor.build(env, cvmBuildContext()),
    (error: unknown) => error instanceof CvmError && /no such image or tag/.test(error.message),
  );
});

test("an image only the node's engine has is copied from it", { skip: missingImages, timeout: 300_000 }, async () => {
  const hello = process.env.CVM_TEST_IMAGE_HELLO_TAR;
  if (!hello) throw new Error("CVM_TEST_IMAGE_HELLO_TAR is not set");
  const { stdout } = await exec("docker", ["--host", "unix:///var/run/docker.sock", "load", "--input", hello]);
  const loaded = /Loaded image: (\S+)/.exec(stdout)?.[1];
  assert.ok(loaded, stdout);
  await host.getImage(loaded).tag({ repo: localOnly.split(":")[0], tag: "1" });

  const env = cvmEnvironment(localOnly);
  const context = cvmBuildContext();
  const observation = await supervisor.build(env, context);
  assert.match(context.lines.join("\n"), /copied from the node's engine/);
  assert.equal(observation.systemd, "unavailable");
  assert.equal((await execIn(supervisor, env, ["echo", "from the node"])).stdout, "from the node\n");
  await supervisor.remove(env, { keepHome: false });
});

test("CVMs built at once all reach running, each with its own cgroups", {
  skip: missingImages,
  timeout: 600_000,
}, async () => {
  const envs = [1, 2, 3].map(() => cvmEnvironment(process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER as string));
  const observations = await Promise.all(envs.map((env) => supervisor.build(env, cvmBuildContext())));
  for (const observation of observations) {
    assert.equal(observation.systemd, "running");
    assert.equal(observation.docker, "answering");
  }
  const hostnames = await Promise.all(
    envs.map(async (env) => (await execIn(supervisor, env, ["hostname"])).stdout.trim()),
  );
  assert.deepEqual(
    hostnames,
    envs.map((env) => env.name),
  );
  await Promise.all(envs.map((env) => supervisor.remove(env, { keepHome: false })));
});

test("CVMs outlive a server restart: the engine stops with close(), the next supervisor finds them running", {
  skip: missingImages,
  timeout: 300_000,
}, async () => {
  const env = cvmEnvironment(process.env.CVM_TEST_IMAGE_PLAIN as string);
  await supervisor.build(env, cvmBuildContext());
  const { Pid: pid } = (await engine.getContainer(`cvm-env-${env.id}`).inspect()).State;
  await supervisor.close();
  await assert.rejects(engine.ping());
  process.kill(pid, 0); // still alive without its engine

  supervisor = await startSupervisor(dataDir);
  const seen = await supervisor.observe(env);
  assert.equal(seen.running, true);
  assert.equal(seen.systemd, "unavailable");
  assert.equal((await execIn(supervisor, env, ["echo", "still here"])).stdout, "still here\n");
  await supervisor.remove(env, { keepHome: false });
});

test("close() stops the engine it started and leaves nothing mounted under it", {
  skip: missingImages,
  timeout: 120_000,
}, async () => {
  const pid = await enginePid();
  await supervisor.close();
  await assert.rejects(engine.ping());
  assert.throws(() => process.kill(pid, 0));
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  const left = mountinfo.split("\n").filter((line) => line.includes(`${dataDir}/engine`));
  assert.deepEqual(left, [], "nothing of the engine stays mounted");
  const { stdout } = await exec("ip", ["-o", "link"]);
  assert.ok(!stdout.includes(`${dataDir}`));
  // The next use starts it again.
  assert.deepEqual(await supervisor.listWorkloads(), []);
});

test("a data dir in a home closed to the remapped root (root's own is 0700): the engine lives elsewhere and starts", async () => {
  const privateHome = await mkdtemp(join(tmpdir(), "cvm-private-home-"));
  await chmod(privateHome, 0o700);
  const closedDataDir = join(privateHome, ".local", "share", "cvm");
  const closed = new CvmEngine({ dataDir: closedDataDir, logger: pino({ level: "silent" }) });
  try {
    const docker = await closed.ensure();
    const info = await docker.info();
    assert.ok((await lstat(join(closedDataDir, "engine"))).isSymbolicLink());
    assert.equal(await readlink(join(closedDataDir, "engine")), relocatedEngineRoot(closedDataDir));
    assert.ok(info.DockerRootDir.startsWith(relocatedEngineRoot(closedDataDir)), info.DockerRootDir);
  } finally {
    await closed.close();
    await rm(relocatedEngineRoot(closedDataDir), { recursive: true, force: true });
    await rm(privateHome, { recursive: true, force: true });
  }
});
