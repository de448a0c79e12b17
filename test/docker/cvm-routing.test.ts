/**
 * The docker provider hands CVMs to the CVM supervisor and keeps standard
 * environments on the host engine, behind the one Provider interface the
 * server sees: a CVM of the image built here boots systemd with Docker inside,
 * a standard environment beside it stays a plain container, and listing
 * workloads finds both.
 */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pino from "pino";
import type { Environment } from "../../src/core/environment.js";
import type { ExecSession, Provider } from "../../src/core/provider.js";
import { createDockerProvider } from "../../src/providers/docker/index.js";
import { newId } from "../../src/store/ids.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { fixtureDataDir } from "../harness/cvm.js";

const cvmImage = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
const plainImage = process.env.CVM_TEST_IMAGE_PLAIN;
const skip = (!cvmImage || !plainImage) && "run through `npm test`, which builds the test images";

let provider: Provider;
const building = () => fixtures.recordingContext({ signal: AbortSignal.timeout(300_000) });
const made: Environment[] = [];

function environment(name: string, image: string, cvm: boolean): Environment {
  const env = fixtures.environment({
    name: `route-${name}-${randomBytes(2).toString("hex")}`,
    image,
    cvm,
    diskGiB: 10,
    buildId: newId("bld"),
  });
  made.push(env);
  return env;
}

async function output(session: ExecSession): Promise<{ stdout: string; code: number }> {
  let stdout = "";
  session.onOutput((stream, data) => {
    if (stream === "stdout") stdout += Buffer.from(data).toString();
  });
  session.end();
  const code = await session.exited;
  return { stdout, code };
}

before(async () => {
  provider = await createDockerProvider({
    kind: "docker",
    dataDir: fixtureDataDir("docker-provider"),
    logger: pino({ level: process.env.CVM_TEST_LOG_LEVEL ?? "warn" }),
    dockerHost: `unix://${process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock"}`,
  });
});

after(async () => {
  for (const env of made) await provider.remove(env, { keepHome: false }).catch(() => undefined);
  await provider?.close();
});

test("a CVM goes to the supervisor, a standard environment stays on the host engine", { skip }, async () => {
  const cvm = environment("cvm", cvmImage as string, true);
  const plain = environment("plain", plainImage as string, false);
  const [cvmBuilt, plainBuilt] = await Promise.all([
    provider.build(cvm, building()),
    provider.build(plain, building()),
  ]);

  assert.equal(cvmBuilt.running, true, cvmBuilt.reason);
  assert.equal(cvmBuilt.systemd, "running", `failed units: ${cvmBuilt.failedUnits.join(", ")}`);
  assert.equal(cvmBuilt.docker, "answering");
  assert.notEqual(cvmBuilt.runtime, "none");
  assert.deepEqual([plainBuilt.runtime, plainBuilt.systemd, plainBuilt.docker], ["none", "unavailable", "absent"]);

  const pid1 = await output(await provider.exec(cvm, { command: ["ps", "-p", "1", "-o", "comm="], tty: false }));
  assert.equal(pid1.stdout.trim(), "systemd");
  const nested = await output(
    await provider.exec(cvm, {
      // cvm/hello is loaded right after boot, off the boot's path: a moment after ready at most.
      command: [
        "sh",
        "-c",
        "for i in $(seq 1 300); do docker image inspect cvm/hello >/dev/null 2>&1 && break; sleep 0.1; done; docker run --rm cvm/hello echo ok",
      ],
      tty: false,
    }),
  );
  assert.deepEqual([nested.stdout.trim(), nested.code], ["ok", 0]);
  const plainPid1 = await output(await provider.exec(plain, { command: ["ps", "-p", "1", "-o", "comm="], tty: false }));
  assert.equal(plainPid1.stdout.trim(), "docker-init");

  const workloads = await provider.listWorkloads();
  for (const env of [cvm, plain]) {
    assert.equal(workloads.filter((w) => w.environmentId === env.id && w.running).length, 1, env.name);
  }

  for (const env of [cvm, plain]) await provider.remove(env, { keepHome: false });
  const left = await provider.listWorkloads();
  assert.deepEqual(
    left.filter((w) => w.environmentId === cvm.id || w.environmentId === plain.id),
    [],
  );
  assert.equal((await provider.observe(cvm)).exists, false);
});
