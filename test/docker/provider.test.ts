/**
 * The docker provider's standard environments against the real host engine
 * and the local registry: build, exec, stop, start, discard, rebuild, remove,
 * with what the engine then holds checked through its own API.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import Dockerode from "dockerode";
import pino from "pino";
import type { Environment } from "../../src/core/environment.js";
import type { ExecSession, Provider } from "../../src/core/provider.js";
import { createDockerProvider } from "../../src/providers/docker/index.js";
import { newId } from "../../src/store/ids.js";
import * as fixtures from "../../src/testing/fixtures.js";

const run = promisify(execFile);
const plainImage = process.env.CVM_TEST_IMAGE_PLAIN;
const helloImage = process.env.CVM_TEST_IMAGE_HELLO;
const noImages = (!plainImage || !helloImage) && "run through `npm test`, which builds the test images";

const docker = new Dockerode({ socketPath: process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock" });
const prefix = `ptest-${randomBytes(3).toString("hex")}`;
const dataDir = mkdtempSync(join(tmpdir(), "cvm-provider-test-"));
let provider: Provider;
const made: Environment[] = [];

function environment(name: string, image: string, overrides: Partial<Environment> = {}): Environment {
  const env = fixtures.environment({
    name: `${prefix}-${name}`,
    image,
    cpu: 1.5,
    memoryGiB: 0.5,
    diskGiB: 5,
    buildId: newId("bld"),
    ...overrides,
  });
  made.push(env);
  return env;
}

/** The caller's side of a build: what the server would record. */
const context = () => fixtures.recordingContext();

async function collect(session: ExecSession, input?: string) {
  let stdout = "";
  let stderr = "";
  session.onOutput((stream, data) => {
    if (stream === "stdout") stdout += Buffer.from(data).toString();
    else stderr += Buffer.from(data).toString();
  });
  if (input !== undefined) session.write(input);
  session.end();
  const code = await session.exited;
  return { stdout, stderr, code };
}

async function sh(env: Environment, script: string) {
  return collect(await provider.exec(env, { command: ["/bin/sh", "-c", script], tty: false }));
}

async function containersOf(env: Environment) {
  return docker.listContainers({ all: true, filters: { label: [`dev.cvm.environment=${env.id}`] } });
}

async function volumeExists(name: string): Promise<boolean> {
  return docker
    .getVolume(name)
    .inspect()
    .then(() => true)
    .catch(() => false);
}

before(async () => {
  provider = await createDockerProvider({ kind: "docker", dataDir, logger: pino({ level: "silent" }) });
  if (helloImage) await run("docker", ["pull", "--quiet", helloImage]);
});

after(async () => {
  for (const env of made) await provider.remove(env, { keepHome: false }).catch(() => undefined);
  await provider?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test("a standard environment: build, exec, stop, start, discard, rebuild, remove", { skip: noImages }, async (t) => {
  const env = environment("life", plainImage as string);
  const ctx = context();
  const built = await provider.build(env, ctx);
  assert.deepEqual(ctx.states, ["pulling", "creating", "starting"]);
  assert.equal(built.running, true);
  assert.deepEqual(
    { runtime: built.runtime, systemd: built.systemd, docker: built.docker },
    { runtime: "none", systemd: "unavailable", docker: "absent" },
  );
  assert.ok(
    ctx.lines.some((l) => l.startsWith(`pulling ${plainImage}`)),
    ctx.lines.join("\n"),
  );
  assert.ok(
    ctx.lines.includes(`disk: /home is limited to 5 GiB (volume cvm-home-${env.id} on an ext4 disk of its own)`),
  );
  assert.ok(
    ctx.lines.some((l) => /^disk: \/ is (not limited: the host engine's data root is|limited to 5 GiB)/.test(l)),
    ctx.lines.join("\n"),
  );

  await t.test("the container carries cvm's labels, limits and nothing of the host", async () => {
    const [found] = await containersOf(env);
    assert.ok(found, "a container labeled with the environment's id");
    const info = await docker.getContainer(found.Id).inspect();
    assert.match(info.Name, new RegExp(`^/cvm-${env.name}-${env.id.slice(4, 12)}$`));
    assert.deepEqual(
      {
        managed: info.Config.Labels["dev.cvm.managed"],
        environment: info.Config.Labels["dev.cvm.environment"],
        build: info.Config.Labels["dev.cvm.build"],
        owner: info.Config.Labels["dev.cvm.owner"],
      },
      { managed: "true", environment: env.id, build: env.buildId, owner: env.ownerId },
    );
    assert.equal(info.HostConfig.NanoCpus, 1.5e9);
    assert.equal(info.HostConfig.Memory, 512 * 2 ** 20);
    assert.equal(info.HostConfig.Privileged, false);
    assert.equal(info.HostConfig.RestartPolicy?.Name, "no");
    assert.deepEqual(info.HostConfig.Binds ?? [], []);
    assert.deepEqual(
      info.Mounts.map((m) => [m.Type, m.Name, m.Destination]),
      [["volume", `cvm-home-${env.id}`, "/home"]],
    );
    assert.ok(!JSON.stringify(info.Mounts).includes("docker.sock"));
    assert.deepEqual(Object.keys(info.NetworkSettings.Networks), ["cvm-standard"]);
    const network = await docker.getNetwork("cvm-standard").inspect();
    assert.equal(network.Options?.["com.docker.network.bridge.enable_icc"], "false");
  });

  await t.test("exec: output, stderr apart, exit codes, stdin, a tty that resizes", async () => {
    const release = await sh(env, "cat /etc/os-release");
    assert.equal(release.code, 0);
    assert.match(release.stdout, /^PRETTY_NAME="Debian GNU\/Linux 12 \(bookworm\)"$/m);
    assert.deepEqual(await sh(env, "echo out; echo err >&2; exit 3"), { stdout: "out\n", stderr: "err\n", code: 3 });
    const piped = await collect(await provider.exec(env, { command: ["tr", "a-z", "A-Z"], tty: false }), "hello\n");
    assert.deepEqual(piped, { stdout: "HELLO\n", stderr: "", code: 0 });
    const tty = await provider.exec(env, { command: ["/bin/sh", "-c", "sleep 0.3; stty size"], tty: true });
    await tty.resize(100, 40);
    const sized = await collect(tty);
    assert.equal(sized.code, 0);
    assert.match(sized.stdout, /^40 100\r?$/m);
    const login = await collect(await provider.exec(env, { command: [], tty: true }), "echo shell=$0; exit 5\n");
    assert.equal(login.code, 5);
    assert.match(login.stdout, /shell=\/bin\/bash/);
  });

  await t.test("stop keeps the container; start runs it again with home intact", async () => {
    assert.equal((await sh(env, "echo kept > /home/marker && cat /home/marker")).stdout, "kept\n");
    const stopAt = Date.now();
    await provider.stop(env, 10);
    assert.ok(Date.now() - stopAt < 5000, "the keep-alive ends on SIGTERM, not at the timeout");
    const stopped = await provider.observe(env);
    assert.deepEqual([stopped.exists, stopped.running], [true, false]);
    assert.match(stopped.reason ?? "", /exited with code 0/);
    await assert.rejects(sh(env, "true"), /is not running/);
    const restart = context();
    assert.equal((await provider.start(env, restart)).running, true);
    assert.deepEqual(restart.states, ["starting"]);
    assert.equal((await sh(env, "cat /home/marker")).stdout, "kept\n");
  });

  await t.test("discard removes the container and keeps home; a build finds the file again", async () => {
    await provider.discard(env, { keepDockerData: false });
    assert.deepEqual(await containersOf(env), []);
    assert.equal(await volumeExists(`cvm-home-${env.id}`), true);
    const gone = await provider.observe(env);
    assert.deepEqual([gone.exists, gone.running], [false, false]);
    await provider.build(env, context());
    assert.equal((await sh(env, "cat /home/marker")).stdout, "kept\n");
  });

  await t.test("listWorkloads reports it by label", async () => {
    const workloads = await provider.listWorkloads();
    const mine = workloads.filter((w) => w.environmentId === env.id);
    assert.equal(mine.length, 1);
    assert.equal(mine[0].running, true);
  });

  await t.test("remove leaves no container and no volume", async () => {
    await provider.remove(env, { keepHome: false });
    assert.deepEqual(await containersOf(env), []);
    const { Volumes } = await docker.listVolumes({ filters: { label: [`dev.cvm.environment=${env.id}`] } });
    assert.deepEqual(Volumes ?? [], []);
    assert.equal(await volumeExists(`cvm-home-${env.id}`), false);
  });
});

test("remove with keepHome keeps only the home volume", { skip: noImages }, async () => {
  const env = environment("keep", helloImage as string);
  await provider.build(env, context());
  await provider.remove(env, { keepHome: true });
  assert.deepEqual(await containersOf(env), []);
  assert.equal(await volumeExists(`cvm-home-${env.id}`), true);
  await provider.remove(env, { keepHome: false });
  assert.equal(await volumeExists(`cvm-home-${env.id}`), false);
});

test("an image no registry has fails with a clear not-found message", { skip: noImages }, async () => {
  const registry = (plainImage as string).split("/")[0];
  const env = environment("missing", `${registry}/cvm/no-such-image-${prefix}:1`);
  const ctx = context();
  await assert.rejects(provider.build(env, ctx), (error: Error & { code?: string; detail?: string }) => {
    assert.match(error.message, new RegExp(`^Image ${registry}/cvm/no-such-image-${prefix}:1: not found`));
    assert.equal(error.code, "BAD_REQUEST");
    assert.match(error.detail ?? "", /manifest unknown/);
    return true;
  });
  assert.deepEqual(ctx.states, ["pulling"]);
  assert.deepEqual(await containersOf(env), []);
});

test("an image only the local engine has is used as it is", { skip: noImages }, async () => {
  const localOnly = `cvm-test/${prefix}-local-only:1`;
  await run("docker", ["tag", helloImage as string, localOnly]);
  try {
    const env = environment("local", localOnly);
    const ctx = context();
    const built = await provider.build(env, ctx);
    assert.equal(built.running, true);
    assert.ok(
      ctx.lines.some((l) => /using the local engine's copy/.test(l)),
      ctx.lines.join("\n"),
    );
    assert.equal((await sh(env, "echo ok")).stdout, "ok\n");
    await provider.remove(env, { keepHome: false });
  } finally {
    await run("docker", ["rmi", localOnly]).catch(() => undefined);
  }
});

test("removeWorkload removes an orphaned labeled container and its volumes", { skip: noImages }, async () => {
  const env = environment("orphan", helloImage as string);
  await provider.build(env, context());
  const [found] = await containersOf(env);
  await provider.removeWorkload(found.Id);
  assert.deepEqual(await containersOf(env), []);
  assert.equal(await volumeExists(`cvm-home-${env.id}`), false);
});

test("removeWorkload leaves a container without cvm's labels alone", { skip: noImages }, async () => {
  const container = await docker.createContainer({ Image: helloImage as string, name: `${prefix}-unlabeled` });
  try {
    await provider.removeWorkload(container.id);
    assert.equal((await container.inspect()).Id, container.id);
  } finally {
    await container.remove({ force: true });
  }
});
