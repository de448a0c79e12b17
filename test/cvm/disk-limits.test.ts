/**
 * The environment's disk size holds for everything it writes (issue 11, item
 * 4): in a CVM, writing more than diskGiB to /, to /home or to
 * /var/lib/docker fails with ENOSPC inside, and nothing beyond it lands on
 * the node: each is a disk of its own (this machine's kernel has no quota
 * support for overlay2 to use). A standard environment's /home likewise; its
 * / only where the host's engine can limit it, which the build log says.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { pino } from "pino";
import type { Provider } from "../../src/core/provider.js";
import { createDockerProvider } from "../../src/providers/docker/index.js";
import type { CvmSupervisor } from "../../src/supervisor/index.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { buildCvm, cvmEnvironment, runId, scratchDataDir, shIn, startSupervisor } from "../harness/cvm.js";
import { removeDataDir, testDockerHost } from "../harness/server.js";

const run = promisify(execFile);
const cvmImage = process.env.CVM_TEST_IMAGE_SYSTEMD;
const plainImage = process.env.CVM_TEST_IMAGE_PLAIN;
const skip = (!cvmImage || !plainImage) && "run through `npm test`, which builds the test images";

const dataDir = `${scratchDataDir}-disk`;
let supervisor: CvmSupervisor;
let provider: Provider;

/** Writes `mib` MiB of zeros to the file; answers dd's exit code and what it said. */
const fill = (file: string, mib: number) =>
  `dd if=/dev/zero of=${file} bs=1M count=${mib} conv=fsync 2>&1; echo "exit $?"; rm -f ${file}`;

before(async () => {
  if (skip) return;
  supervisor = await startSupervisor(dataDir);
  provider = await createDockerProvider({
    kind: "docker",
    dataDir: `${dataDir}-provider`,
    logger: pino({ level: "warn" }),
    dockerHost: testDockerHost,
  });
});

after(async () => {
  if (supervisor) {
    for (const workload of await supervisor.listWorkloads()) await supervisor.removeWorkload(workload.ref);
    await supervisor.close();
  }
  await provider?.close();
  removeDataDir(dataDir);
  await rm(`${dataDir}-provider`, { recursive: true, force: true });
});

test("a CVM of 1 GiB: writing 1.5 GiB to /, to /home or to /var/lib/docker ends in ENOSPC", {
  skip,
  timeout: 600_000,
}, async () => {
  const environment = cvmEnvironment(cvmImage as string, { diskGiB: 1 });
  const { log } = await buildCvm(supervisor, environment);
  assert.ok(
    log.some((l) =>
      /the root filesystem is limited to 1 GiB \(its writable layer on an ext4 disk of its own\)/.test(l),
    ),
    log.join("\n"),
  );
  const disks = async () => (await run("losetup", ["--list", "--noheadings", "--output", "BACK-FILE"])).stdout;
  for (const kind of ["root", "home", "docker"]) {
    assert.ok((await disks()).includes(`cvm-${kind}-${environment.id}.ext4`), `a ${kind} disk of its own`);
  }
  for (const place of ["/big", "/home/big", "/var/lib/docker/big"]) {
    const { stdout } = await shIn(supervisor, environment, fill(place, 1536));
    assert.match(stdout, /No space left on device/, `${place}: ${stdout}`);
    assert.match(stdout, /exit 1/, place);
  }
  const { stdout } = await shIn(supervisor, environment, fill("/home/small", 256));
  assert.match(stdout, /exit 0/, `what fits is written: ${stdout}`);
  await supervisor.remove(environment, { keepHome: false });
  assert.ok(!(await disks()).includes(environment.id), "its disks are gone with it");
});

test("a standard environment of 1 GiB: /home ends in ENOSPC; / as far as the host engine allows, as its log says", {
  skip,
  timeout: 300_000,
}, async () => {
  const environment = fixtures.environment({
    id: `env_${runId}`,
    name: `disk-${runId}`,
    image: plainImage as string,
    diskGiB: 1,
    cpu: 0.5,
    memoryGiB: 0.25,
    buildId: `bld_${runId}`,
  });
  const context = fixtures.recordingContext();
  try {
    assert.equal((await provider.build(environment, context)).running, true);
    assert.ok(
      context.lines.includes(
        "disk: /home is limited to 1 GiB (volume cvm-home-" + environment.id + " on an ext4 disk of its own)",
      ),
      context.lines.join("\n"),
    );
    const rootLine = context.lines.find((l) => l.startsWith("disk: / is "));
    assert.ok(rootLine, context.lines.join("\n"));
    const exec = async (script: string) => {
      const session = await provider.exec(environment, { command: ["sh", "-c", script], tty: false });
      let out = "";
      session.onOutput((_stream, data) => {
        out += Buffer.from(data).toString();
      });
      session.end();
      await session.exited;
      return out;
    };
    const home = await exec(fill("/home/big", 1536));
    assert.match(home, /No space left on device/, home);
    if (rootLine.startsWith("disk: / is limited")) {
      assert.match(await exec(fill("/big", 1536)), /No space left on device/);
    }
  } finally {
    await provider.remove(environment, { keepHome: false });
  }
  const { stdout: loops } = await run("losetup", ["--list", "--noheadings", "--output", "BACK-FILE"]);
  assert.ok(!loops.includes(`cvm-home-${environment.id}`), "its home disk is gone with it");
});
