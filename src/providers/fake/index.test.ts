/**
 * The fake provider keeps to its scripts, so the tests that lean on it test
 * the server and not the fake: scripts by environment or by image, a failure
 * or a hang at the step named, workloads that stop or vanish behind cvm's
 * back, orphans, and a build resumed where it was left.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { CvmError } from "../../core/errors.js";
import * as fixtures from "../../testing/fixtures.js";
import { createFakeProvider } from "./index.js";

test("an unscripted build enters every step and runs; stop and start keep the workload", async () => {
  const fake = createFakeProvider();
  const environment = fixtures.environment();
  const context = fixtures.recordingContext();
  const built = await fake.build(environment, context);
  assert.equal(built.running, true);
  assert.deepEqual(context.states, ["pulling", "creating", "starting"]);
  await fake.stop(environment);
  assert.equal((await fake.observe(environment)).running, false);
  assert.equal((await fake.start(environment, fixtures.recordingContext())).running, true);
  assert.deepEqual(await fake.listWorkloads(), [
    { environmentId: environment.id, ref: `fake-${environment.id}`, running: true },
  ]);
});

test("a script by image fails every build of it at its step, with its reason; the workload made so far stays", async () => {
  const fake = createFakeProvider();
  fake.script("registry.example/broken:1", { failAt: "starting", reason: "exec format error" });
  const environment = fixtures.environment({ image: "registry.example/broken:1" });
  const context = fixtures.recordingContext();
  await assert.rejects(fake.build(environment, context), (error: unknown) => {
    assert.ok(error instanceof CvmError);
    assert.equal(error.message, "exec format error");
    return true;
  });
  assert.deepEqual(context.states, ["pulling", "creating", "starting"]);
  assert.deepEqual(await fake.observe(environment), fixtures.observation({ running: false }));
  assert.equal((await fake.build(fixtures.environment(), fixtures.recordingContext())).running, true);
});

test("a hang waits at its step until the build is aborted, and ends with the abort's reason", async () => {
  const fake = createFakeProvider({ script: { hangAt: "pulling" } });
  const controller = new AbortController();
  const context = fixtures.recordingContext({ signal: controller.signal });
  const building = fake.build(fixtures.environment(), context);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(context.states, ["pulling"]);
  controller.abort(new Error("stopped by the user"));
  await assert.rejects(building, /stopped by the user/);
});

test("workloads stop and vanish behind cvm's back; orphans are listed and removed by ref", async () => {
  const fake = createFakeProvider();
  const oom = fixtures.environment();
  const gone = fixtures.environment();
  await fake.build(oom, fixtures.recordingContext());
  await fake.build(gone, fixtures.recordingContext());
  fake.stopBehindBack(oom.id, "killed: out of memory");
  fake.vanish(gone.id);
  assert.deepEqual(await fake.observe(oom), fixtures.observation({ running: false, reason: "killed: out of memory" }));
  const absent = await fake.observe(gone);
  assert.equal(absent.exists, false);
  assert.equal(absent.reason, "no fake workload for this environment");
  const ref = fake.orphan("env_nobodys");
  assert.ok((await fake.listWorkloads()).some((w) => w.ref === ref));
  await fake.removeWorkload(ref);
  assert.equal(fake.hasWorkload("env_nobodys"), false);
});

test("where it resumes builds, a build of the same build id adopts the workload it left", async () => {
  const fake = createFakeProvider({ resumesBuilds: true });
  const environment = fixtures.environment({ buildId: "bld_1" });
  await fake.build(environment, fixtures.recordingContext());
  const resumed = fixtures.recordingContext();
  await fake.build(environment, resumed);
  assert.equal(resumed.lines[0], "fake: adopting the workload of build bld_1");
  const rebuilt = fixtures.recordingContext();
  await fake.build({ ...environment, buildId: "bld_2" }, rebuilt);
  assert.notEqual(rebuilt.lines[0], "fake: adopting the workload of build bld_2");
});

test("exec echoes the command and its input, and exits 0 when the input ends", async () => {
  const fake = createFakeProvider();
  const environment = fixtures.environment();
  await fake.build(environment, fixtures.recordingContext());
  const session = await fake.exec(environment, { command: ["echo", "hi"], tty: false });
  const out: string[] = [];
  session.onOutput((_stream, data) => out.push(Buffer.from(data).toString()));
  await new Promise((resolve) => setTimeout(resolve, 0));
  session.write("input\n");
  session.end();
  assert.equal(await session.exited, 0);
  assert.equal(out.join(""), "echo hi\ninput\n");
});
