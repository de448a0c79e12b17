import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openStore } from "../store/index.js";
import { installationId } from "./installation.js";

test("the installation id: made once, the same for every server on the store, also when they ask at once", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "cvm-installation-"));
  try {
    const stores = await Promise.all(Array.from({ length: 4 }, () => openStore({ dataDir })));
    try {
      const ids = await Promise.all(stores.map((store) => installationId(store)));
      assert.match(ids[0], /^ins_[0-9a-f]{20}$/);
      assert.deepEqual(new Set(ids), new Set([ids[0]]));
      assert.equal(await installationId(stores[0]), ids[0]);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
