import assert from "node:assert/strict";
import { test } from "node:test";
import { binfmtNote, binfmtPerUserNamespace } from "./multi-arch.js";

test("binfmt_misc is per user namespace from Linux 6.7 on", () => {
  for (const release of ["6.7.0", "6.8.0-1015-aws", "6.18.44-fc-v857", "7.0.1"])
    assert.ok(binfmtPerUserNamespace(release));
  for (const release of ["6.6.30", "6.1.0-13-cloud-amd64", "5.15.0-1057-azure", "garbage"]) {
    assert.ok(!binfmtPerUserNamespace(release), release);
  }
});

test("the build log says what a CVM can do with foreign binaries, and why not on an older kernel", () => {
  assert.match(binfmtNote(true, "6.18.44"), /^the CVM has a binfmt_misc of its own \(kernel 6\.18\.44\)/);
  assert.match(
    binfmtNote(false, "6.1.0-13-cloud-amd64"),
    /^unavailable: kernel 6\.1\.0-13-cloud-amd64 has one binfmt_misc for the whole node/,
  );
  assert.match(binfmtNote(false, "6.8.0"), /^unavailable: .* but mounting it failed$/);
});
