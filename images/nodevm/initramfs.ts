/**
 * The node VM's initramfs: busybox (static), the init script, and the kernel
 * modules that reach the root disk and the agent's port, written as a newc
 * cpio archive (what the kernel unpacks; no cpio tool needed on the host).
 */

import { readFileSync } from "node:fs";
import { basename, join } from "node:path";

/** A module's name as modprobe spells it (dashes and underscores are the same). */
const moduleName = (path: string) =>
  basename(path)
    .replace(/\.ko(\.[a-z]+)?$/, "")
    .replace(/-/g, "_");

/**
 * The module files to load, dependencies first, for the named modules, from
 * depmod's modules.dep (paths relative to the kernel's module directory).
 */
export function moduleLoadOrder(modulesDep: string, wanted: string[]): string[] {
  const deps = new Map<string, { path: string; needs: string[] }>();
  for (const line of modulesDep.split("\n")) {
    const [path, rest] = line.split(":");
    if (!path || rest === undefined) continue;
    deps.set(moduleName(path), { path, needs: rest.trim().split(/\s+/).filter(Boolean) });
  }
  const order: string[] = [];
  const visit = (name: string) => {
    const entry = deps.get(name.replace(/-/g, "_"));
    if (!entry) throw new Error(`kernel module ${name} is not in modules.dep`);
    if (order.includes(entry.path)) return;
    for (const need of entry.needs) visit(moduleName(need));
    order.push(entry.path);
  };
  for (const name of wanted) visit(name);
  return order;
}

export type CpioEntry =
  | { path: string; type: "dir"; mode?: number }
  | { path: string; type: "file"; data: Buffer; mode?: number }
  | { path: string; type: "symlink"; target: string }
  | { path: string; type: "char"; major: number; minor: number; mode?: number };

const typeBits = { dir: 0o040000, file: 0o100000, symlink: 0o120000, char: 0o020000 } as const;

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function header(fields: number[]): string {
  return `070701${fields.map((f) => f.toString(16).padStart(8, "0")).join("")}`;
}

/** A newc ("070701") cpio archive of the entries, owned by root. */
export function cpioArchive(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let inode = 1;
  const add = (name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0]) => {
    const nameBytes = Buffer.from(`${name}\0`);
    const head = Buffer.from(
      header([inode++, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0]),
    );
    parts.push(head, nameBytes, pad4(head.length + nameBytes.length), data, pad4(data.length));
  };
  for (const entry of entries) {
    const name = entry.path.replace(/^\/+/, "");
    if (entry.type === "dir") add(name, typeBits.dir | (entry.mode ?? 0o755), Buffer.alloc(0));
    if (entry.type === "file") add(name, typeBits.file | (entry.mode ?? 0o644), entry.data);
    if (entry.type === "symlink") add(name, typeBits.symlink | 0o777, Buffer.from(entry.target));
    if (entry.type === "char")
      add(name, typeBits.char | (entry.mode ?? 0o600), Buffer.alloc(0), [entry.major, entry.minor]);
  }
  add("TRAILER!!!", 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

export interface InitramfsInput {
  busybox: string;
  initScript: string;
  /** The kernel's module directory (…/lib/modules/<version>), with modules.dep. */
  moduleDir: string;
  modules: string[];
}

export function buildInitramfs(input: InitramfsInput): { archive: Buffer; modules: string[] } {
  const order = moduleLoadOrder(readFileSync(join(input.moduleDir, "modules.dep"), "utf8"), input.modules);
  const entries: CpioEntry[] = [
    ...["bin", "dev", "proc", "sys", "newroot", "modules"].map((path) => ({ path, type: "dir" as const })),
    { path: "dev/console", type: "char", major: 5, minor: 1 },
    { path: "bin/busybox", type: "file", data: readFileSync(input.busybox), mode: 0o755 },
    { path: "bin/sh", type: "symlink", target: "busybox" },
    { path: "init", type: "file", data: readFileSync(input.initScript), mode: 0o755 },
    { path: "modules.order", type: "file", data: Buffer.from(order.map((p) => `${basename(p)}\n`).join("")) },
    ...order.map((p) => ({
      path: `modules/${basename(p)}`,
      type: "file" as const,
      data: readFileSync(join(input.moduleDir, p)),
    })),
  ];
  return { archive: cpioArchive(entries), modules: order.map((p) => basename(p)) };
}
