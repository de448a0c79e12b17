/**
 * The entrypoint rule and `cvm image check` against the real test images in
 * the real engine: what a user sees before (and instead of) waiting for a build.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import Dockerode from "dockerode";
import type { ImageCheck } from "../../src/supervisor/image-check.js";
import { inspectImageInit } from "../../src/supervisor/init-path.js";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const socketPath = process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock";
const docker = new Dockerode({ socketPath });

const images = {
  systemdDocker: process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER,
  plain: process.env.CVM_TEST_IMAGE_PLAIN,
  dangling: process.env.CVM_TEST_IMAGE_DANGLING_INIT,
};

function needs(name: keyof typeof images): false | string {
  return images[name] ? false : `the test image for ${name} is not set: run through \`npm test\`, which builds it`;
}

async function cvm(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", ...args, "--docker-host", `unix://${socketPath}`],
      { cwd: root },
    );
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number };
    return { stdout: failed.stdout, stderr: failed.stderr, code: failed.code };
  }
}

async function check(image: string): Promise<ImageCheck> {
  const result = await cvm("image", "check", image, "--json");
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as ImageCheck;
}

async function leftoverInspectors(): Promise<string[]> {
  const containers = await docker.listContainers({ all: true, filters: { label: ["cvm.inspect"] } });
  return containers.flatMap((c) => c.Names).filter((name) => name.startsWith(`/cvm-inspect-${process.pid}-`));
}

test("systemd+Docker image: /sbin/init leads to systemd, Docker started on its socket's first use, user dev", {
  skip: needs("systemdDocker"),
}, async () => {
  const result = await check(images.systemdDocker!);
  assert.equal(result.init.found, true);
  assert.equal(result.init.chain[0], "/sbin/init");
  assert.ok(
    result.init.found && /^\/(usr\/)?lib\/systemd\/systemd$/.test(result.init.target),
    JSON.stringify(result.init),
  );
  assert.equal(result.initIsSystemd, true);
  assert.equal(result.dockerd.found, true);
  assert.equal(result.dockerService.state, "socket-enabled", result.dockerService.evidence);
  assert.match(result.dockerService.evidence, /sockets\.target\.wants\/docker\.socket/);
  assert.deepEqual(result.defaultUser, { name: "dev", uid: 1000, source: "/etc/passwd" });
  assert.equal(result.verdict.id, "cvm-systemd-docker");
});

test("systemd+Docker image: the text a person reads", { skip: needs("systemdDocker") }, async () => {
  const result = await cvm("image", "check", images.systemdDocker!);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^\/sbin\/init: +\/sbin\/init -> .*\/lib\/systemd\/systemd$/m);
  assert.match(result.stdout, /^docker\.service: +socket-enabled /m);
  assert.match(result.stdout, /^default user: +dev \(uid 1000\)/m);
  assert.match(result.stdout, /^verdict: +CVM-ready with systemd and Docker/m);
});

test("image without /sbin/init: absent, runs under a minimal init", { skip: needs("plain") }, async () => {
  assert.deepEqual(await inspectImageInit(docker, images.plain!), {
    found: false,
    chain: ["/sbin/init", "/usr/sbin/init"],
    reason: "/usr/sbin/init does not exist",
  });
  const result = await check(images.plain!);
  assert.equal(result.systemd.found, false);
  assert.equal(result.dockerService.state, "absent");
  assert.equal(result.verdict.id, "cvm-minimal-init");
  assert.deepEqual(await leftoverInspectors(), []);
});

test("image whose /sbin/init is a dangling link: counts as absent", { skip: needs("dangling") }, async () => {
  const init = await inspectImageInit(docker, images.dangling!);
  assert.equal(init.found, false);
  assert.ok(!init.found && /dangling/.test(init.reason), JSON.stringify(init));
  assert.equal(init.chain.at(-1), "/usr/lib/cvm/no-such-init");
  const result = await check(images.dangling!);
  assert.equal(result.verdict.id, "cvm-minimal-init");
  assert.match(result.verdict.summary, /dangling/);
  assert.deepEqual(await leftoverInspectors(), []);
});

test("an image no registry has: a clear error, not a stack trace", async () => {
  const registry = process.env.CVM_TEST_REGISTRY ?? "127.0.0.1:5000";
  const result = await cvm("image", "check", `${registry}/cvm/no-such-image-${process.pid}:none`);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^cvm: Image .*no-such-image.*: not found/m);
  assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/);
});
