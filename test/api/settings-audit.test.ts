/** Infrastructure settings and the audit log over real HTTP, on both stores. */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { CvmClient } from "../../src/client/index.js";
import { refused } from "../harness/refusals.js";
import { startTestServer, storeKinds, type TestServer } from "../harness/server.js";

for (const kind of storeKinds) {
  describe(`settings and audit (${kind})`, () => {
    let t: TestServer;
    let admin: CvmClient & { user: { id: string } };
    before(async () => {
      t = await startTestServer(kind);
      admin = await t.firstAdmin();
    });
    after(() => t?.close());

    test("defaults: CVMs off; a partial update merges and is audited with before and after", async () => {
      const initial = await admin.infrastructure();
      assert.equal(initial.cvmEnabled, false);
      const updated = await admin.updateInfrastructure({ limits: { maxMemoryGiB: 32 }, runtime: "userns" });
      assert.equal(updated.limits.maxMemoryGiB, 32);
      assert.equal(updated.limits.maxCpu, initial.limits.maxCpu, "untouched limits are kept");
      assert.equal(updated.runtime, "userns");
      assert.deepEqual(await admin.infrastructure(), updated);
      const [entry] = (await admin.audit({ action: "settings.update" })).items;
      assert.equal(entry.actorId, admin.user.id);
      assert.equal(entry.target, "settings/infrastructure");
      assert.equal((entry.before as { runtime: string }).runtime, "auto");
      assert.equal((entry.after as { runtime: string }).runtime, "userns");
    });

    test("FUSE and TUN: on by default, each turned off on its own; anything but a boolean is a 400 on its field", async () => {
      const initial = await admin.infrastructure();
      assert.equal(initial.fuseDevice, true);
      assert.equal(initial.tunDevice, true);
      const off = await admin.updateInfrastructure({ tunDevice: false });
      assert.equal(off.tunDevice, false);
      assert.equal(off.fuseDevice, true, "the other device is untouched");
      const error = await refused(admin.updateInfrastructure({ fuseDevice: "no" as never }), 400);
      assert.deepEqual(
        error.body.validations?.map((v) => v.field),
        ["fuseDevice"],
      );
      assert.deepEqual(await admin.updateInfrastructure({ tunDevice: true }), initial);
    });

    test("invalid settings are a 400 on the fields, and nothing changes", async () => {
      const before = await admin.infrastructure();
      const error = await refused(
        admin.updateInfrastructure({
          runtime: "kata" as never,
          limits: { minCpu: 4, maxCpu: 2 },
          supervisorPrivileges: { mode: "capabilities", capabilities: ["not a cap"] },
        }),
        400,
      );
      assert.deepEqual(
        error.body.validations?.map((v) => v.field),
        ["runtime"],
      );
      const merged = await refused(
        admin.updateInfrastructure({
          limits: { minCpu: 4, maxCpu: 2 },
          supervisorPrivileges: { capabilities: ["bad cap"] },
        }),
        400,
      );
      assert.deepEqual(merged.body.validations?.map((v) => v.field).sort(), [
        "limits.minCpu",
        "supervisorPrivileges.capabilities",
      ]);
      const unknown = await refused(admin.updateInfrastructure({ turbo: true } as never), 400);
      assert.deepEqual(
        unknown.body.validations?.map((v) => v.field),
        ["turbo"],
      );
      assert.deepEqual(await admin.infrastructure(), before);
    });

    test("the checks' images (what the trial Pod asks for) must be image references: a 400 names the field", async () => {
      const bad = await refused(admin.infrastructureChecks(["registry.example/ok:1", "Not An Image"]), 400);
      assert.deepEqual(
        bad.body.validations?.map((v) => v.field),
        ["images"],
      );
      assert.match(bad.body.validations?.[0].detail ?? "", /^Not An Image has an invalid repository name/);
    });

    test("turning CVMs on runs the checks: any failing check refuses with 409 unless forced, and force is audited", async () => {
      const { checks, worst } = await admin.infrastructureChecks();
      assert.ok(Array.isArray(checks));
      const failing = checks.filter((c) => c.status === "fail");
      if (failing.length > 0) {
        assert.equal(worst, "fail");
        const error = await refused(admin.updateInfrastructure({ cvmEnabled: true }), 409);
        assert.match(error.body.message, /infrastructure check/);
        assert.deepEqual(
          error.body.validations?.map((v) => v.field),
          failing.map((c) => `checks.${c.id}`),
        );
        assert.equal((await admin.infrastructure()).cvmEnabled, false);
        const forced = await admin.updateInfrastructure({ cvmEnabled: true, force: true });
        assert.equal(forced.cvmEnabled, true);
        const [entry] = (await admin.audit({ action: "settings.update", limit: 1 })).items;
        assert.equal((entry.after as { forced?: boolean }).forced, true);
      } else {
        const enabled = await admin.updateInfrastructure({ cvmEnabled: true });
        assert.equal(enabled.cvmEnabled, true);
        const [entry] = (await admin.audit({ action: "settings.update", limit: 1 })).items;
        assert.equal((entry.after as { forced?: boolean }).forced, undefined);
      }
      assert.equal((await t.anonymous().setupStatus()).cvmEnabled, true);
      await admin.updateInfrastructure({ cvmEnabled: false });
    });

    test("the audit log filters by actor, action and target, pages newest first, and checks its parameters", async () => {
      const other = await t.userWithRole(admin, "site-manager", "auditor@example.com");
      for (let i = 0; i < 5; i++) await other.updateInfrastructure({ limits: { maxDiskGiB: 100 + i } });
      const byOther = await admin.audit({ actorId: other.user.id });
      assert.equal(byOther.items.length, 5);
      assert.ok(byOther.items.every((e) => e.actorEmail === "auditor@example.com"));
      const values = byOther.items.map((e) => (e.after as { limits: { maxDiskGiB: number } }).limits.maxDiskGiB);
      assert.deepEqual(values, [104, 103, 102, 101, 100], "newest first");

      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await admin.audit({ actorId: other.user.id, limit: 2, cursor });
        assert.ok(page.items.length <= 2);
        seen.push(...page.items.map((e) => e.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor);
      assert.equal(pages, 3);
      assert.deepEqual(
        seen,
        byOther.items.map((e) => e.id),
      );

      const users = await admin.audit({ target: `user/${other.user.id}` });
      assert.deepEqual(
        users.items.map((e) => e.action),
        ["user.create"],
      );
      const future = await admin.audit({ since: new Date(Date.now() + 60_000).toISOString() });
      assert.equal(future.items.length, 0);

      const badLimit = await refused(admin.audit({ limit: 501 }), 400);
      assert.deepEqual(
        badLimit.body.validations?.map((v) => v.field),
        ["limit"],
      );
      const badSince = await refused(admin.audit({ since: "yesterday" }), 400);
      assert.deepEqual(
        badSince.body.validations?.map((v) => v.field),
        ["since"],
      );
    });

    test("role changes are audited as user.set-role", async () => {
      const user = await t.userWithRole(admin, "member");
      await admin.updateUser(user.user.id, { role: "site-manager" });
      const [entry] = (await admin.audit({ action: "user.set-role" })).items;
      assert.equal(entry.target, `user/${user.user.id}`);
      assert.equal((entry.before as { role: string }).role, "member");
      assert.equal((entry.after as { role: string }).role, "site-manager");
    });
  });
}
