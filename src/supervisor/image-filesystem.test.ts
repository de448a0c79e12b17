import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readTar } from "./image-filesystem.js";

const longDirectory = "d".repeat(120);
const longTarget = `/${"t".repeat(150)}/systemd`;

/** A real tar stream, as GNU tar writes it in each format the engine's Go archive/tar may produce. */
function archive(format: "pax" | "gnu" | "ustar"): Buffer {
  const root = mkdtempSync(join(tmpdir(), "cvm-tar-"));
  try {
    mkdirSync(join(root, "etc"));
    writeFileSync(join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    chmodSync(join(root, "etc", "passwd"), 0o644);
    symlinkSync("../lib/systemd/systemd", join(root, "init"));
    const members = ["etc", "init"];
    if (format !== "ustar") {
      mkdirSync(join(root, longDirectory));
      symlinkSync(longTarget, join(root, longDirectory, "init"));
      members.push(longDirectory);
    }
    return execFileSync("tar", [`--format=${format}`, "-C", root, "-cf", "-", ...members]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

for (const format of ["pax", "gnu", "ustar"] as const) {
  test(`readTar: files, directories and links of a ${format} archive`, () => {
    const entries = readTar(archive(format));
    const byName = new Map(entries.map((e) => [e.name, e]));
    assert.equal(byName.get("etc")?.type, "dir");
    const passwd = byName.get("etc/passwd");
    assert.equal(passwd?.type, "file");
    assert.equal(passwd?.mode, 0o644);
    assert.equal(passwd?.content.toString(), "root:x:0:0:root:/root:/bin/sh\n");
    assert.deepEqual(
      { type: byName.get("init")?.type, linkName: byName.get("init")?.linkName },
      { type: "symlink", linkName: "../lib/systemd/systemd" },
    );
    if (format !== "ustar") {
      const long = byName.get(`${longDirectory}/init`);
      assert.deepEqual({ type: long?.type, linkName: long?.linkName }, { type: "symlink", linkName: longTarget });
    }
  });
}

test("readTar: an empty archive has no entries", () => {
  assert.deepEqual(readTar(Buffer.alloc(1024)), []);
});
