/**
 * Issue 2's "Must show", end to end: a real server on the host engine, driven
 * through the typed client and the real `cvm` binary. A standard environment
 * from an image built here from Debian's packages reaches running (its build
 * log followed), `cvm ssh NAME -- cat /etc/os-release` runs through the
 * server, a file written in home survives a rebuild, and after delete the
 * engine holds no container or volume of it.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, test } from "node:test";
import Dockerode from "dockerode";
import type { CvmClient } from "../../src/client/index.js";
import { compiledCvm, cvmBin } from "../harness/cli.js";
import { startTestServer, type TestServer } from "../harness/server.js";

const image = process.env.CVM_TEST_IMAGE_PLAIN;
const socket = process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock";
const docker = new Dockerode({ socketPath: socket });

let server: TestServer;
let client: CvmClient;
const name = `std-${process.pid}`;

before(async () => {
  await compiledCvm();
  server = await startTestServer();
  client = await server.firstAdmin();
});

after(async () => {
  // A failed run still leaves nothing in the engine.
  if (client?.token) await client.deleteEnvironment(name).catch(() => undefined);
  await server?.close();
});

/** `cvm ssh NAME -- CMD...` through the server, as a script would run it. */
function cvmSsh(name: string, command: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cvmBin,
      ["ssh", name, "--", ...command],
      {
        env: { ...process.env, CVM_URL: server.url, CVM_TOKEN: client.token, CVM_CONFIG_DIR: server.dataDir },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

/** Follows a build's log to its end; returns the lines and the outcome. */
async function follow(name: string, build: string): Promise<{ lines: string[]; outcome: string }> {
  const lines: string[] = [];
  for await (const item of client.logs(name, { build, follow: true, signal: AbortSignal.timeout(180_000) })) {
    if ("end" in item) return { lines, outcome: String(item.outcome) };
    lines.push(item.text);
  }
  return { lines, outcome: "log ended without an outcome" };
}

test("a standard environment: create, ssh, a file in home survives rebuild, delete leaves nothing", {
  skip: !image && "run through `npm test`, which builds the test images",
}, async () => {
  const created = await client.createEnvironment({ name, image: image as string, cpu: 1, memoryGiB: 1 });
  assert.equal(created.cvm, false);
  const build = await follow(name, created.buildId as string);
  assert.equal(build.outcome, "running", build.lines.join("\n"));
  assert.ok(
    build.lines.some((line) => line.includes(`pulling ${image}`)),
    build.lines.join("\n"),
  );

  const running = await client.environment(name);
  assert.equal(running.state, "running");
  assert.deepEqual(
    { runtime: running.runtime, systemd: running.systemd, docker: running.docker },
    { runtime: "none", systemd: "unavailable", docker: "absent" },
  );

  const release = await cvmSsh(name, ["cat", "/etc/os-release"]);
  assert.equal(release.code, 0, release.stderr);
  assert.match(release.stdout, /^PRETTY_NAME="Debian GNU\/Linux 12 \(bookworm\)"$/m);

  // One call writes the file and shows that stderr and the exit code come back apart.
  const write = await cvmSsh(name, ["sh", "-c", "echo 'still here' > /home/marker && echo to-stderr >&2; exit 7"]);
  assert.equal(write.code, 7, write.stderr);
  assert.deepEqual([write.stdout, write.stderr.trim()], ["", "to-stderr"]);

  const [before] = await docker.listContainers({
    all: true,
    filters: { label: [`dev.cvm.environment=${created.id}`] },
  });
  const rebuilding = await client.rebuildEnvironment(name);
  assert.notEqual(rebuilding.buildId, created.buildId);
  const rebuild = await follow(name, rebuilding.buildId as string);
  assert.equal(rebuild.outcome, "running", rebuild.lines.join("\n"));
  const [afterRebuild] = await docker.listContainers({
    all: true,
    filters: { label: [`dev.cvm.environment=${created.id}`] },
  });
  assert.notEqual(afterRebuild.Id, before.Id, "the rebuild made a new container");
  assert.equal(afterRebuild.Labels["dev.cvm.build"], rebuilding.buildId);

  const marker = await cvmSsh(name, ["cat", "/home/marker"]);
  assert.equal(marker.code, 0, marker.stderr);
  assert.equal(marker.stdout, "still here\n");

  await client.deleteEnvironment(name);
  await assert.rejects(client.environment(name), /not found/i);
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`dev.cvm.environment=${created.id}`] },
  });
  assert.deepEqual(containers, []);
  const { Volumes } = await docker.listVolumes({ filters: { label: [`dev.cvm.environment=${created.id}`] } });
  assert.deepEqual(Volumes ?? [], []);
  const named = await docker.listVolumes({ filters: { name: [created.id] } });
  assert.deepEqual(named.Volumes ?? [], []);
});
