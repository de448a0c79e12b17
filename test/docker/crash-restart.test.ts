/**
 * A real `cvm server` process killed with SIGKILL while a CVM is starting
 * (issue 11, item 6): the next server on the same data dir resumes the build
 * with the container it made (the same container, not a new one), the build
 * ends with its outcome and a followed log with it, and nothing runs that
 * the environment does not account for.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import type { CvmClient } from "../../src/client/index.js";
import { startServerProcess } from "../harness/server-process.js";

const run = promisify(execFile);
const cvmImage = process.env.CVM_TEST_IMAGE_SYSTEMD;
const skip = !cvmImage && "run through `npm test`, which builds the test images";

async function until(client: CvmClient, ref: string, states: string[], timeoutMs = 300_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { state } = await client.environment(ref);
    if (states.includes(state)) return state;
    if (Date.now() > deadline) assert.fail(`${ref} stayed ${state}, expected ${states.join(" or ")}`);
    await sleep(50);
  }
}

test("a CVM cut off while starting: the next server goes on with the same container, and the build ends running", {
  skip,
  timeout: 900_000,
}, async () => {
  const server = await startServerProcess({ cvms: true });
  const engine = ["-H", `unix://${join(server.dataDir, "engine", "docker.sock")}`];
  const containers = async (id: string) =>
    (await run("docker", [...engine, "ps", "-aq", "--no-trunc", "--filter", `label=dev.cvm.environment=${id}`])).stdout
      .split("\n")
      .filter(Boolean);
  try {
    const admin = await server.firstAdmin();
    await admin.updateInfrastructure({ cvmEnabled: true, force: true });
    const created = await admin.createEnvironment({ name: "cut", image: cvmImage as string, cvm: true, diskGiB: 2 });
    await until(admin, "cut", ["starting"]);
    const [before] = await containers(created.id);
    assert.ok(before, "the build made its container before the kill");
    await server.kill();
    await server.start();

    const lines: string[] = [];
    let outcome: string | undefined;
    for await (const item of admin.logs("cut", { follow: true, signal: AbortSignal.timeout(600_000) })) {
      if ("end" in item) outcome = item.outcome;
      else lines.push(item.text);
    }
    assert.equal(outcome, "running", lines.join("\n"));
    assert.ok(
      lines.includes("build resumed after interrupted by a server restart: continuing with what it made"),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) => l.startsWith("resuming the build with its container")),
      lines.join("\n"),
    );
    const environment = await admin.environment("cut");
    assert.equal(environment.state, "running");
    assert.equal(environment.systemd, "running");
    assert.deepEqual(await containers(created.id), [before], "the same container went on; no second one");
    const builds = (await admin.builds("cut")).items;
    assert.deepEqual(
      builds.map((b) => [b.id, b.outcome, Boolean(b.finishedAt)]),
      [[created.buildId, "running", true]],
    );

    await admin.deleteEnvironment("cut");
    assert.deepEqual(await containers(created.id), []);
  } catch (error) {
    console.error(`the server's log ends:\n${server.log().split("\n").slice(-30).join("\n")}`);
    throw error;
  } finally {
    await server.close();
  }
});
