/**
 * Kept in CI (issue 11): 100 create/delete cycles against a real `cvm server`
 * process on the docker provider, killed with SIGKILL every 10 cycles, half
 * of the time while its environments are being built and half while they are
 * being deleted; two of the hundred are CVMs. After each restart every build
 * ends with an outcome; at the end nothing of the installation is left: no
 * container or volume in either engine, no cgroup directory of any container
 * it made, no loop device on its data dir, no row in its store.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { type CvmClient, collectPages } from "../../src/client/index.js";
import type { EnvironmentSummary } from "../../src/core/environment.js";
import { engineDiagnosis } from "../harness/engine-diagnosis.js";
import { startServerProcess } from "../harness/server-process.js";

const run = promisify(execFile);
const plainImage = process.env.CVM_TEST_IMAGE_PLAIN;
const cvmImage = process.env.CVM_TEST_IMAGE_SYSTEMD;
const skip = (!plainImage || !cvmImage) && "run through `npm test`, which builds the test images";

const rounds = 10;
const perRound = 10;
/** The rounds whose last environment is a CVM: one killed while built, one while deleted. */
const cvmRounds = new Set([4, 7]);
const settled = new Set(["running", "failed", "stopped"]);

/** Every environment the client's user can see. */
function all(client: CvmClient): Promise<EnvironmentSummary[]> {
  return collectPages((page) => client.listEnvironments(page));
}

/** Waits until no environment is being built, stopped or deleted. */
async function untilSettled(client: CvmClient, timeoutMs = 240_000): Promise<EnvironmentSummary[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const environments = await all(client);
    const busy = environments.filter((e) => !settled.has(e.state));
    if (busy.length === 0) return environments;
    if (Date.now() > deadline) {
      assert.fail(`still busy: ${busy.map((e) => `${e.name} ${e.state}`).join(", ")}`);
    }
    await sleep(250);
  }
}

/** Ids of the installation's containers in an engine (the host's, or cvm's own through its socket). */
async function containers(installation: string, host?: string): Promise<string[]> {
  const args = [
    ...(host ? ["-H", host] : []),
    "ps",
    "-aq",
    "--no-trunc",
    "--filter",
    `label=dev.cvm.installation=${installation}`,
  ];
  const { stdout } = await run("docker", args).catch(() => ({ stdout: "" }));
  return stdout.split("\n").filter(Boolean);
}

async function volumes(installation: string, host?: string): Promise<string[]> {
  const args = [
    ...(host ? ["-H", host] : []),
    "volume",
    "ls",
    "-q",
    "--filter",
    `label=dev.cvm.installation=${installation}`,
  ];
  const { stdout } = await run("docker", args).catch(() => ({ stdout: "" }));
  return stdout.split("\n").filter(Boolean);
}

/** cgroup directories named for any of the containers, under every hierarchy's docker/ and cvm/ parents. */
function cgroupsOf(ids: Set<string>): string[] {
  const left: string[] = [];
  for (const hierarchy of readdirSync("/sys/fs/cgroup")) {
    for (const parent of ["docker", "cvm"]) {
      const dir = join("/sys/fs/cgroup", hierarchy, parent);
      if (!existsSync(dir)) continue;
      for (const entry of readdirSync(dir)) if (ids.has(entry)) left.push(join(dir, entry));
    }
  }
  return left;
}

async function loopDevicesUnder(dir: string): Promise<string[]> {
  const { stdout } = await run("losetup", ["--list", "--noheadings", "--output", "NAME,BACK-FILE"]);
  return stdout.split("\n").filter((line) => line.includes(dir));
}

test("100 create/delete cycles with a kill -9 of the server every 10: every build ends, nothing is left over", {
  skip,
  timeout: 15 * 60_000,
}, async () => {
  const server = await startServerProcess({ cvms: true });
  const engineSocket = `unix://${join(server.dataDir, "engine", "docker.sock")}`;
  const seen = new Set<string>();
  const installation = server.installationId();
  let cleanedUp = false;
  try {
    const admin = await server.firstAdmin();
    await admin.updateInfrastructure({ cvmEnabled: true, force: true });
    const builds = { checked: 0, open: [] as string[] };
    let cycles = 0;
    const collect = async () => {
      for (const id of [...(await containers(installation)), ...(await containers(installation, engineSocket))]) {
        seen.add(id);
      }
    };
    /**
     * Kills the server once an environment is in one of `states` (or `delay`
     * ms have passed) while `work` is in flight, lets the work fail or finish,
     * and starts the server again.
     */
    const killDuring = async (work: Promise<unknown>, states: string[], delay: number) => {
      const deadline = Date.now() + delay;
      while (Date.now() < deadline && !(await all(admin)).some((e) => states.includes(e.state))) await sleep(10);
      await collect();
      await server.kill();
      await work;
      await server.start();
    };

    for (let round = 0; round < rounds; round++) {
      const cvmRound = cvmRounds.has(round);
      const specs = Array.from({ length: perRound }, (_, i) => {
        const cvm = cvmRound && i === perRound - 1;
        return {
          name: `r${round}-e${i}${cvm ? "-cvm" : ""}`,
          image: (cvm ? cvmImage : plainImage) as string,
          cvm,
          cpu: 0.25,
          memoryGiB: cvm ? 1 : 0.25,
          diskGiB: 1,
        };
      });
      // Settled as they go: a request the kill cuts off fails, and is expected to.
      const creates = Promise.allSettled(specs.map((spec) => admin.createEnvironment(spec)));
      // Even rounds: killed while their environments are being made (a CVM's build takes seconds, so it is cut off).
      if (round % 2 === 0) await killDuring(creates, ["creating", "starting"], 3000);
      else await creates;
      // A create the killed server never received is asked again, so every round makes all of its environments.
      const known = new Set((await all(admin)).map((e) => e.name));
      for (const spec of specs.filter((s) => !known.has(s.name))) await admin.createEnvironment(spec);

      const made = await untilSettled(admin);
      assert.equal(made.length, perRound, `round ${round}: every environment was made`);
      cycles += made.length;
      await collect();
      for (const environment of made) {
        for (const build of (await admin.builds(environment.id)).items) {
          builds.checked += 1;
          if (!build.outcome || !build.finishedAt) builds.open.push(`${environment.name} ${build.id}`);
        }
      }

      const deletes = Promise.allSettled(made.map((e) => admin.deleteEnvironment(e.id)));
      // Odd rounds: killed while their environments are being deleted; the next server finishes the deletes.
      if (round % 2 === 1) await killDuring(deletes, ["deleting"], 3000);
      else await deletes;
      await untilSettled(admin);
      // A delete the killed server never received is asked again.
      for (const left of await all(admin)) await admin.deleteEnvironment(left.id);
      assert.deepEqual(await all(admin), [], `round ${round}: every environment is gone`);
    }
    assert.deepEqual(builds.open, [], `every build ended with an outcome (${builds.checked} builds)`);
    assert.equal(cycles, rounds * perRound);
    assert.ok(builds.checked >= cycles, `${builds.checked} builds checked`);

    assert.deepEqual(await containers(installation), [], "no container on the host engine");
    assert.deepEqual(await containers(installation, engineSocket), [], "no container in cvm's engine");
    assert.deepEqual(await volumes(installation), [], "no volume on the host engine");
    assert.deepEqual(await volumes(installation, engineSocket), [], "no volume in cvm's engine");
    const db = new Database(join(server.dataDir, "cvm.db"), { readonly: true });
    try {
      for (const table of ["environments", "environment_credentials", "builds", "build_logs"]) {
        const { count } = db.prepare(`SELECT count(*) AS count FROM ${table}`).get() as { count: number };
        assert.equal(count, 0, `no row left in ${table}`);
      }
    } finally {
      db.close();
    }
    // What the restarted servers found: builds they resumed, stops and deletes they finished.
    const reports = server
      .log()
      .split("\n")
      .filter((line) => line.includes('"msg":"reconciled"'))
      .map(
        (line) =>
          (JSON.parse(line) as { report: { resumed: unknown[]; finished: unknown[]; vanished: unknown[] } }).report,
      );
    const found = (key: "resumed" | "finished" | "vanished") => reports.reduce((n, r) => n + r[key].length, 0);
    const dataDir = server.dataDir;
    await server.close();
    cleanedUp = true;
    assert.ok(seen.size >= rounds * perRound * 0.5, `${seen.size} containers were seen`);
    assert.deepEqual(cgroupsOf(seen), [], "no cgroup directory of any container it made");
    assert.deepEqual(await loopDevicesUnder(dataDir), [], "no loop device on its data dir");
    console.log(
      `cycles: ${cycles} (${cvmRounds.size} CVMs), kills: ${rounds}, builds: ${builds.checked}, containers: ${seen.size}; after the kills: ${found("resumed")} builds resumed, ${found("finished")} stops and deletes finished, ${found("vanished")} failed; left over: 0`,
    );
  } catch (error) {
    console.error(`the server's log ends:\n${server.log().split("\n").slice(-40).join("\n")}`);
    console.error(await engineDiagnosis(installation));
    throw error;
  } finally {
    if (!cleanedUp) await server.close();
  }
});
