import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { pino } from "pino";
import * as fixtures from "../testing/fixtures.js";
import { startTestService, type TestService } from "../testing/service.js";
import { Activity } from "./activity.js";
import { AuditLog } from "./audit-log.js";
import { IdleStopper } from "./idle-stop.js";
import { SettingsService } from "./settings-service.js";

// The rule against the real service on the FAKE provider, with time moved by hand.
let t: TestService;
let activity: Activity;
let idle: IdleStopper;
const minute = 60_000;

before(async () => {
  t = await startTestService();
  activity = new Activity();
  const settings = new SettingsService(t.store, new AuditLog(t.store), { provider: "docker", dataDir: "/nonexistent" });
  idle = new IdleStopper({
    store: t.store,
    settings,
    environments: t.service,
    activity,
    logger: pino({ level: "silent" }),
  });
});

after(async () => {
  await idle?.close();
  await t?.close();
});

const site = (idleStopMinutes: number) => t.store.settings.putInfrastructure(fixtures.settings({ idleStopMinutes }));

async function running(name: string) {
  const created = await t.service.create(t.member, { name, image: "fake/image" });
  return t.until(created.id, ["running"]);
}

test("a running environment nobody uses stops after the site's idle time, and its log says why", async () => {
  await site(30);
  const env = await running("idle-site");
  const runningAt = Date.parse(env.timeline.at(-1)?.at as string);
  assert.deepEqual(await idle.tick(runningAt + 29 * minute), []);
  assert.deepEqual(await idle.tick(runningAt + 31 * minute), [env.id]);
  const stopped = await t.until(env.id, ["stopped"]);
  const lines = (await t.store.builds.logs(stopped.buildId as string)).map((l) => l.text);
  assert.ok(
    lines.includes("state: running → stopping (idle for 30 minutes: no terminal, SSH session or forwarded connection)"),
    lines.join("\n"),
  );
  const audit = await t.store.audit.list({ action: "environment.stop" }, { limit: 10 });
  assert.equal(audit.items[0]?.actorEmail, "cvm (idle stop)");
});

test("0 never stops; an environment's own idle time wins over the site's either way", async () => {
  await site(0);
  const never = await running("idle-never");
  assert.deepEqual(await idle.tick(Date.now() + 365 * 24 * 60 * minute), []);
  const own = await running("idle-own");
  await t.store.workspace.setIdleStopMinutes(own.id, 5, new Date().toISOString());
  assert.deepEqual(await idle.tick(Date.now() + 6 * minute), [own.id]);
  await site(10);
  await t.store.workspace.setIdleStopMinutes(never.id, 0, new Date().toISOString());
  assert.deepEqual(await idle.tick(Date.now() + 60 * minute), []);
  assert.equal((await t.store.environments.get(never.id))?.state, "running");
  assert.deepEqual(await idle.status(never), { minutes: 0, source: "environment", lastActiveAt: undefined });
});

test("an open connection keeps it running; the clock starts again from the last use seen", async () => {
  await site(10);
  const env = await running("idle-used");
  const release = activity.hold(env.id);
  const heldUntil = Date.now() + 60 * minute;
  assert.deepEqual(await idle.tick(heldUntil), [], "held for an hour, past its idle time");
  release();
  const current = await t.store.environments.get(env.id);
  const status = await idle.status(current as NonNullable<typeof current>);
  assert.equal(status.source, "site");
  assert.equal(status.lastActiveAt, new Date(heldUntil).toISOString());
  assert.equal(status.stopsAt, new Date(heldUntil + 10 * minute).toISOString());
  assert.deepEqual(await idle.tick(heldUntil + 9 * minute), []);
  assert.deepEqual(await idle.tick(heldUntil + 11 * minute), [env.id]);
});
