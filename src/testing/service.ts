/**
 * The environment service as the server runs it, for fast tests: the real
 * service on a real SQLite store in a temporary directory, with the FAKE
 * provider (src/providers/fake) in place of an engine. Nothing else is
 * started; a test of the rules, races and reconcile runs in milliseconds.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import type { ReconcileReport } from "../api/contract.js";
import type { Build } from "../core/build.js";
import type { Environment, EnvironmentState } from "../core/environment.js";
import type { Role } from "../core/roles.js";
import type { Store } from "../core/store.js";
import { createFakeProvider, type FakeProvider, type FakeProviderOptions } from "../providers/fake/index.js";
import { type Actor, AuditLog } from "../server/audit-log.js";
import { EnvironmentService } from "../server/environments/index.js";
import { EventBus } from "../server/event-bus.js";
import { createMetrics } from "../server/metrics.js";
import { SettingsService } from "../server/settings-service.js";
import { openStore } from "../store/index.js";
import * as fixtures from "./fixtures.js";

export interface TestServiceOptions extends FakeProviderOptions {
  /** A store other servers write to as well (as PostgreSQL with replicas), not this server's alone. */
  shared?: boolean;
  /** CVMs turned on in the settings. */
  cvmEnabled?: boolean;
  /** How long a stop or removal may take (the server's default is minutes). */
  workloadChangeTimeoutMs?: number;
}

export interface TestService {
  service: EnvironmentService;
  store: Store;
  settings: SettingsService;
  provider: FakeProvider;
  bus: EventBus;
  /** A site admin and a member, in the store. */
  admin: Actor;
  member: Actor;
  /** Another user in the store. */
  user(role?: Role): Promise<Actor>;
  /** Waits until the environment is in one of the states; fails the test after a few seconds. */
  until(id: string, states: EnvironmentState[]): Promise<Environment>;
  /** Waits until the build has its outcome. */
  finished(buildId: string): Promise<Build>;
  /** Stops the service as a server stops, opens the store again and reconciles, as a server starts. */
  restart(): Promise<ReconcileReport>;
  /**
   * Drops the service as `kill -9` drops a server (nothing it runs is told or
   * waited for: open builds stay open), opens the store again and reconciles.
   */
  restartAfterKill(): Promise<ReconcileReport>;
  close(): Promise<void>;
}

const waitMs = 5000;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`waited ${waitMs / 1000} s for ${what}`);
    await sleep(5);
  }
}

export async function startTestService(options: TestServiceOptions = {}): Promise<TestService> {
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-service-test-"));
  const provider = createFakeProvider(options);
  const bus = new EventBus();
  const logger = pino({ level: process.env.CVM_TEST_LOG_LEVEL ?? "silent" });
  const open = async () => {
    const opened = await openStore({ dataDir });
    const store: Store = options.shared ? { ...opened, soleWriter: false } : opened;
    const audit = new AuditLog(store);
    const settings = new SettingsService(store, audit, { provider: "docker", dataDir });
    const service = new EnvironmentService({
      store,
      provider,
      settings,
      audit,
      bus,
      metrics: createMetrics(store),
      logger,
      stopTimeoutSeconds: 1,
      workloadChangeTimeoutMs: options.workloadChangeTimeoutMs,
      pools: { intervalMs: 50, versionCheckMs: 0 },
    });
    await service.pools?.start();
    return { store, service, settings };
  };
  let { store, service, settings } = await open();
  if (options.cvmEnabled) await store.settings.putInfrastructure(fixtures.settings({ cvmEnabled: true }));
  const user = async (role: Role = "member") => store.users.create(fixtures.newUser({ role }));
  const admin = await user("site-admin");
  const member = await user();
  const test: TestService = {
    service,
    store,
    settings,
    provider,
    bus,
    admin,
    member,
    user,
    until: (id, states) =>
      waitFor(`${id} to be ${states.join(" or ")}`, async () => {
        const environment = await store.environments.get(id);
        return environment && states.includes(environment.state) ? environment : undefined;
      }),
    finished: (buildId) =>
      waitFor(`build ${buildId} to end`, async () => {
        const build = await store.builds.get(buildId);
        return build?.outcome ? build : undefined;
      }),
    async restart() {
      await service.close();
      await store.close();
      ({ store, service, settings } = await open());
      Object.assign(test, { store, service, settings });
      return service.reconcile({ removeOrphans: false });
    },
    async restartAfterKill() {
      await store.close();
      ({ store, service } = await open());
      Object.assign(test, { store, service });
      return service.reconcile({ removeOrphans: false });
    },
    async close() {
      await service.close();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return test;
}
