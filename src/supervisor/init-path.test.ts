import assert from "node:assert/strict";
import { test } from "node:test";
import { findInitPath, type ImageEntry, type ImageFilesystem, type InitPath, maxSymlinks } from "./init-path.js";

/** An image's filesystem as a table: path -> entry; "-> x" is a symlink to x, a number an executable file's mode. */
type Layout = Record<string, string | number | "dir">;

function inMemory(layout: Layout): ImageFilesystem & { asked: string[] } {
  const asked: string[] = [];
  const entries = new Map<string, ImageEntry>([["/", { type: "dir", mode: 0o755 }]]);
  for (const [path, spec] of Object.entries(layout)) {
    // Every parent is a directory unless the layout says otherwise.
    const parts = path.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const parent = `/${parts.slice(0, i).join("/")}`;
      if (!(parent in layout)) entries.set(parent, { type: "dir", mode: 0o755 });
    }
    if (spec === "dir") entries.set(path, { type: "dir", mode: 0o755 });
    else if (typeof spec === "number") entries.set(path, { type: "file", mode: spec });
    else if (spec.startsWith("-> ")) entries.set(path, { type: "symlink", mode: 0o777, linkTarget: spec.slice(3) });
    else entries.set(path, { type: "other", mode: 0o644 });
  }
  return {
    asked,
    async lstat(path) {
      asked.push(path);
      return entries.get(path);
    },
  };
}

const cases: { name: string; layout: Layout; path?: string; expect: InitPath }[] = [
  {
    name: "a regular executable file",
    layout: { "/sbin/init": 0o755 },
    expect: { found: true, chain: ["/sbin/init"], target: "/sbin/init" },
  },
  {
    name: "an absolute link resolves against the image root",
    layout: { "/sbin/init": "-> /lib/systemd/systemd", "/lib/systemd/systemd": 0o755 },
    expect: { found: true, chain: ["/sbin/init", "/lib/systemd/systemd"], target: "/lib/systemd/systemd" },
  },
  {
    name: "a relative link resolves against the link's directory",
    layout: { "/sbin/init": "-> ../lib/systemd/systemd", "/lib/systemd/systemd": 0o755 },
    expect: { found: true, chain: ["/sbin/init", "/lib/systemd/systemd"], target: "/lib/systemd/systemd" },
  },
  {
    name: "a chain of links",
    layout: {
      "/sbin/init": "-> /usr/sbin/init",
      "/usr/sbin/init": "-> ../lib/systemd/systemd",
      "/usr/lib/systemd/systemd": 0o755,
    },
    expect: {
      found: true,
      chain: ["/sbin/init", "/usr/sbin/init", "/usr/lib/systemd/systemd"],
      target: "/usr/lib/systemd/systemd",
    },
  },
  {
    name: "a link in a parent directory component (merged /usr)",
    layout: {
      "/sbin": "-> usr/sbin",
      "/lib": "-> usr/lib",
      "/usr/sbin/init": "-> ../lib/systemd/systemd",
      "/usr/lib/systemd/systemd": 0o755,
    },
    expect: {
      found: true,
      chain: ["/sbin/init", "/usr/sbin/init", "/usr/lib/systemd/systemd"],
      target: "/usr/lib/systemd/systemd",
    },
  },
  {
    name: "an absolute link to a path whose parent is a link",
    layout: { "/sbin/init": "-> /lib/systemd/systemd", "/lib": "-> usr/lib", "/usr/lib/systemd/systemd": 0o700 },
    expect: {
      found: true,
      chain: ["/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd"],
      target: "/usr/lib/systemd/systemd",
    },
  },
  {
    name: "'..' is clamped at the image root, never the node's",
    layout: { "/sbin/init": "-> ../../../../bin/busybox", "/bin/busybox": 0o755 },
    expect: { found: true, chain: ["/sbin/init", "/bin/busybox"], target: "/bin/busybox" },
  },
  {
    name: "an absolute link that would point at the node's file still stays in the image",
    layout: { "/sbin/init": "-> /usr/bin/true" },
    expect: {
      found: false,
      chain: ["/sbin/init", "/usr/bin/true"],
      reason: "/usr does not exist (/sbin/init is a dangling link)",
    },
  },
  {
    name: "a dangling link counts as absent",
    layout: { "/sbin/init": "-> /lib/systemd/systemd", "/lib/systemd": "dir" },
    expect: {
      found: false,
      chain: ["/sbin/init", "/lib/systemd/systemd"],
      reason: "/lib/systemd/systemd does not exist (/sbin/init is a dangling link)",
    },
  },
  {
    name: "a missing file behind a good directory link is absent, not a dangling link",
    layout: { "/sbin": "-> usr/sbin", "/usr/sbin": "dir" },
    expect: { found: false, chain: ["/sbin/init", "/usr/sbin/init"], reason: "/usr/sbin/init does not exist" },
  },
  {
    name: "no /sbin/init at all",
    layout: { "/sbin": "dir" },
    expect: { found: false, chain: ["/sbin/init"], reason: "/sbin/init does not exist" },
  },
  {
    name: "a loop of links",
    layout: { "/sbin/init": "-> /sbin/init2", "/sbin/init2": "-> init" },
    expect: {
      found: false,
      chain: ["/sbin/init", ...Array.from({ length: maxSymlinks / 2 }, () => ["/sbin/init2", "/sbin/init"]).flat()],
      reason: `more than ${maxSymlinks} symlinks (a loop) at /sbin/init`,
    },
  },
  {
    name: "a link to itself",
    layout: { "/sbin/init": "-> init" },
    expect: {
      found: false,
      chain: Array.from({ length: maxSymlinks + 1 }, () => "/sbin/init"),
      reason: `more than ${maxSymlinks} symlinks (a loop) at /sbin/init`,
    },
  },
  {
    name: "a directory instead of a file",
    layout: { "/sbin/init": "-> /lib/systemd", "/lib/systemd": "dir" },
    expect: { found: false, chain: ["/sbin/init", "/lib/systemd"], reason: "/lib/systemd is a directory" },
  },
  {
    name: "a file that is not executable",
    layout: { "/sbin/init": 0o644 },
    expect: { found: false, chain: ["/sbin/init"], reason: "/sbin/init is not executable" },
  },
  {
    name: "a device or pipe is not a regular file",
    layout: { "/sbin/init": "pipe" },
    expect: { found: false, chain: ["/sbin/init"], reason: "/sbin/init is not a regular file" },
  },
  {
    name: "a parent component that is a file",
    layout: { "/sbin": 0o755 },
    expect: { found: false, chain: ["/sbin/init"], reason: "/sbin is not a directory" },
  },
  {
    name: "an empty link target",
    layout: { "/sbin/init": "-> " },
    expect: { found: false, chain: ["/sbin/init"], reason: "/sbin/init is an empty symlink" },
  },
  {
    name: "another path when asked",
    path: "/usr/lib/systemd/systemd",
    layout: { "/usr/lib/systemd/systemd": 0o755 },
    expect: { found: true, chain: ["/usr/lib/systemd/systemd"], target: "/usr/lib/systemd/systemd" },
  },
];

for (const c of cases) {
  test(`entrypoint rule: ${c.name}`, async () => {
    assert.deepEqual(await findInitPath(inMemory(c.layout), c.path), c.expect);
  });
}

test("entrypoint rule: never asks about a path with a link before its last component", async () => {
  const fs = inMemory({
    "/sbin": "-> usr/sbin",
    "/usr/sbin/init": "-> /lib/init",
    "/lib": "-> usr/lib",
    "/usr/lib/init": 0o755,
  });
  await findInitPath(fs);
  assert.deepEqual(fs.asked, [
    "/sbin",
    "/usr",
    "/usr/sbin",
    "/usr/sbin/init",
    "/lib",
    "/usr",
    "/usr/lib",
    "/usr/lib/init",
  ]);
});
