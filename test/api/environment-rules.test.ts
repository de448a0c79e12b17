/**
 * Environment requests that must be refused before any provider is asked:
 * bad names, images and sizes; CVMs while disabled; another member's
 * environment; listing beyond one's role. Nothing may be created by them.
 * Over HTTP on both stores, with the fake provider: no engine is needed to
 * refuse a request (the same rules on the service: src/server/environments).
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ApiError, CvmClient } from "../../src/client/index.js";
import type { EnvironmentState } from "../../src/core/environment.js";
import { createFakeProvider } from "../../src/providers/fake/index.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { refused } from "../harness/refusals.js";
import { startTestServer, storeKinds, type TestServer } from "../harness/server.js";

const fields = (error: ApiError) => (error.body.validations ?? []).map((v) => v.field).sort();

for (const kind of storeKinds) {
  describe(`environment rules (${kind})`, () => {
    let t: TestServer;
    let admin: CvmClient;
    let member: CvmClient;
    before(async () => {
      t = await startTestServer({ store: kind, provider: createFakeProvider() });
      admin = await t.firstAdmin();
      member = await t.userWithRole(admin, "member");
    });
    after(() => t?.close());

    test("bad names, images and sizes are a 400 on each field, and nothing is created", async () => {
      const cases: [Record<string, unknown>, string[]][] = [
        [{ name: "Dev_Box", image: "debian:12" }, ["name"]],
        [{ name: "-dev", image: "debian:12" }, ["name"]],
        [{ name: "a".repeat(64), image: "debian:12" }, ["name"]],
        [{ name: "dev", image: "Debian:12" }, ["image"]],
        [{ name: "dev", image: "debian:-12" }, ["image"]],
        [{ name: "dev", image: "registry:5000/x@sha256:abc" }, ["image"]],
        [{ name: "dev", image: "" }, ["image"]],
        [{ name: "dev", image: "debian", cpu: 0 }, ["cpu"]],
        [
          { name: "dev", image: "debian", cpu: 1000, memoryGiB: 0.01, diskGiB: 100000 },
          ["cpu", "diskGiB", "memoryGiB"],
        ],
        [{ name: "dev", image: "debian", cpu: "two" }, ["cpu"]],
        [{ name: "dev", image: "debian", cvm: "yes" }, ["cvm"]],
        [{ image: "debian" }, ["name"]],
        [{ name: "dev", image: "debian", color: "blue" }, ["color"]],
        [{ name: "BAD", image: "BAD", cpu: -1 }, ["cpu", "image", "name"]],
      ];
      for (const [request, expected] of cases) {
        const error = await refused(member.createEnvironment(request as never), 400);
        assert.deepEqual(fields(error), expected, JSON.stringify(request));
      }
      assert.deepEqual((await member.listEnvironments()).items, []);
      assert.deepEqual((await admin.listEnvironments({ owner: "all" })).items, []);
    });

    test("sizes beyond the limits an admin set are refused, naming the limit", async () => {
      await admin.updateInfrastructure({ limits: { maxCpu: 4 } });
      const error = await refused(member.createEnvironment({ name: "big", image: "debian", cpu: 6 }), 400);
      assert.deepEqual(fields(error), ["cpu"]);
      assert.match(error.body.validations?.[0].detail ?? "", /at most 4/);
      await admin.updateInfrastructure({ limits: { maxCpu: 16 } });
      assert.deepEqual((await member.listEnvironments()).items, []);
    });

    test("a CVM while cvmEnabled is off is a 409 that names the setting, and nothing is created", async () => {
      assert.equal((await admin.infrastructure()).cvmEnabled, false);
      const error = await refused(member.createEnvironment({ name: "dev", image: "debian", cvm: true }), 409);
      assert.match(error.body.message, /cvmEnabled/);
      assert.deepEqual(fields(error), ["cvm"]);
      assert.deepEqual((await admin.listEnvironments({ owner: "all" })).items, []);
    });

    test("another's environment is a 404 for a member, by id and by name; listing others is 403", async () => {
      const other = await t.userWithRole(admin, "member");
      // Written straight into the store: this test is about who may see it, not about building it.
      const environment = await t.server.store.environments.create(
        fixtures.environment({ owner: other.user, name: "theirs", image: "debian", state: "stopped" }),
      );
      for (const ref of [environment.id, "theirs"]) {
        const error = await refused(member.environment(ref), 404);
        assert.match(error.body.message, /not found/);
        await refused(member.startEnvironment(ref), 404);
        await refused(member.stopEnvironment(ref), 404);
        await refused(member.deleteEnvironment(ref), 404);
        await refused(member.builds(ref), 404);
      }
      await refused(member.listEnvironments({ owner: "all" }), 403);
      await refused(member.listEnvironments({ owner: other.user.id }), 403);
      assert.deepEqual((await member.listEnvironments()).items, []);
      // Its owner sees it by name, an admin by id and in the list of all.
      assert.equal((await other.environment("theirs")).id, environment.id);
      assert.equal((await admin.environment(environment.id)).name, "theirs");
      assert.deepEqual(
        (await admin.listEnvironments({ owner: "all" })).items.map((e) => e.id),
        [environment.id],
      );
      assert.deepEqual(
        (await admin.listEnvironments({ owner: other.user.id, state: "stopped", kind: "standard" })).items.map(
          (e) => e.id,
        ),
        [environment.id],
      );
      assert.deepEqual((await admin.listEnvironments({ owner: "all", kind: "cvm" })).items, []);
      const bad = await refused(admin.listEnvironments({ state: "sleeping" as EnvironmentState }), 400);
      assert.deepEqual(fields(bad), ["state"]);
      // A member may not stop a stopped environment of its own either: the state rule answers 409.
      await refused(other.stopEnvironment("theirs"), 409);
    });

    test("a restart fails builds no process runs any more, and running environments whose workload vanished", async () => {
      const owner = await t.userWithRole(admin, "member");
      const { environments } = t.server.store;
      const longAgo = new Date(Date.now() - 11 * 60_000).toISOString();
      const pulling = await environments.create(
        fixtures.environment({ owner: owner.user, name: "was-pulling", state: "pulling", createdAt: longAgo }),
      );
      // Just now: with PostgreSQL another replica may be building it, so it is left alone.
      const fresh = await environments.create(fixtures.environment({ owner: owner.user, name: "just-queued" }));
      const running = await environments.create(
        fixtures.environment({ owner: owner.user, name: "was-running", state: "running" }),
      );
      const stopped = await environments.create(
        fixtures.environment({ owner: owner.user, name: "was-stopped", state: "stopped" }),
      );
      await t.restart();
      const client = t.anonymous();
      client.token = owner.token;
      const after = async (id: string) => client.environment(id);
      assert.equal((await after(pulling.id)).state, "failed");
      if (kind === "sqlite") {
        assert.equal((await after(pulling.id)).stateReason, "interrupted by a server restart");
        assert.equal((await after(fresh.id)).state, "failed");
      } else {
        assert.match(
          (await after(pulling.id)).stateReason ?? "",
          /^interrupted: no server has advanced it for 11 minutes/,
        );
        assert.equal((await after(fresh.id)).state, "queued");
      }
      assert.equal((await after(running.id)).state, "failed");
      assert.match((await after(running.id)).stateReason ?? "", /^workload vanished: /);
      assert.equal((await after(stopped.id)).state, "stopped");
      assert.deepEqual(
        (await after(running.id)).timeline.map((c) => c.state),
        ["running", "failed"],
      );
    });
  });
}
