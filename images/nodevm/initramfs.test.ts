/**
 * The node VM's initramfs is made here without cpio or mkinitramfs: check the
 * module order and the archive format, which the kernel reads without a word
 * when they are wrong (the VM just does not find its disk).
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { cpioArchive, moduleLoadOrder } from "./initramfs.js";

const modulesDep = [
  "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
  "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
  "kernel/drivers/virtio/virtio_pci_legacy_dev.ko:",
  "kernel/drivers/virtio/virtio_pci_modern_dev.ko:",
  "kernel/drivers/virtio/virtio_ring.ko:",
  "kernel/drivers/virtio/virtio.ko:",
  "kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
].join("\n");

test("initramfs modules load dependencies first, each once", () => {
  const order = moduleLoadOrder(modulesDep, ["virtio_pci", "virtio_blk", "virtio-console"]).map((p) =>
    p.replace(/^.*\//, ""),
  );
  assert.deepEqual(order, [
    "virtio_pci_legacy_dev.ko",
    "virtio_pci_modern_dev.ko",
    "virtio_ring.ko",
    "virtio.ko",
    "virtio_pci.ko",
    "virtio_blk.ko",
    "virtio_console.ko",
  ]);
  assert.throws(() => moduleLoadOrder(modulesDep, ["9p"]), /9p is not in modules.dep/);
});

test("the initramfs archive is newc cpio: aligned entries, data as given, a trailer", () => {
  const archive = cpioArchive([
    { path: "/bin", type: "dir" },
    { path: "init", type: "file", data: Buffer.from("#!/bin/sh\n"), mode: 0o755 },
    { path: "dev/console", type: "char", major: 5, minor: 1 },
  ]);
  const text = archive.toString("latin1");
  assert.equal(archive.length % 4, 0);
  assert.equal(text.match(/070701/g)?.length, 4);
  const init = text.indexOf("init\0");
  const header = text.slice(init - 110, init);
  assert.equal(Number.parseInt(header.slice(14, 22), 16), 0o100755, "mode");
  assert.equal(Number.parseInt(header.slice(54, 62), 16), 10, "file size");
  const console = text.slice(text.indexOf("dev/console\0") - 110);
  assert.equal(Number.parseInt(console.slice(78, 86), 16), 5, "rdev major");
  assert.ok(text.includes("#!/bin/sh\n"));
  assert.ok(text.includes("TRAILER!!!\0"));
});
