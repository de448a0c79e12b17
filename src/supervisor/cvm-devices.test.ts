import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { deviceNumbers, ensureDeviceNodes } from "./cvm-devices.js";

const asRoot = process.getuid?.() === 0 ? false : "making device nodes takes the node's root";
const root = { uid: 100000, gid: 100000 };

test("cvm's own nodes: the device's numbers, open to everyone, owned by the CVM's root; an off device gets none", {
  skip: asRoot,
}, async (t) => {
  if (!existsSync(deviceNumbers.fuse.node)) return t.skip("this machine has no /dev/fuse");
  const dir = await mkdtemp(join(tmpdir(), "cvm-devices-"));
  try {
    const { nodes, notes } = await ensureDeviceNodes(dir, root, { fuse: true, tun: false });
    assert.deepEqual(Object.keys(nodes), ["fuse"]);
    const info = statSync(nodes.fuse!);
    assert.ok(info.isCharacterDevice());
    assert.equal(info.rdev, (10 << 8) | 229);
    assert.equal(info.mode & 0o777, 0o666);
    assert.equal(info.uid, root.uid);
    assert.match(notes.join("\n"), /^FUSE: \/dev\/fuse \(cvm's own node/m);
    assert.match(notes.join("\n"), /^TUN: turned off in the infrastructure settings/m);
    // Made once: a second build keeps the node.
    const again = await ensureDeviceNodes(dir, root, { fuse: true, tun: false });
    assert.equal(statSync(again.nodes.fuse!).ino, info.ino);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
