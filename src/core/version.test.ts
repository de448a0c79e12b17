/** The version cvm reports is the one its package declares. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { cvmVersion } from "./version.js";

test("cvmVersion is package.json's version", () => {
  const manifest = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "package.json"), "utf8"));
  assert.equal(cvmVersion, manifest.version);
});
