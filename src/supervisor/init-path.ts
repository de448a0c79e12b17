/**
 * The entrypoint rule: `/sbin/init` is looked up in the image's own
 * filesystem, following symlinks there the way the kernel would inside the
 * container, never on the node: absolute link targets resolve against the
 * image's root, relative ones against the link's directory, `..` stops at the
 * root. A dangling link, a loop, or a final target that is not an executable
 * regular file all count as absent.
 */

import { posix } from "node:path";
import type Dockerode from "dockerode";
import { type ImageEntry, type ImageFilesystem, withImageFilesystem } from "./image-filesystem.js";

export type { ImageEntry, ImageFilesystem } from "./image-filesystem.js";

/** Linux's own limit on symlinks followed while resolving one path (MAXSYMLINKS). */
export const maxSymlinks = 40;

export type ResolvedPath =
  | { found: true; chain: string[]; target: string; entry: ImageEntry }
  | { found: false; chain: string[]; reason: string };

export type InitPath =
  | { found: true; chain: string[]; target: string }
  | { found: false; chain: string[]; reason: string };

function components(path: string): string[] {
  return path.split("/").filter((part) => part !== "" && part !== ".");
}

function absolute(parts: string[]): string {
  return `/${parts.join("/")}`;
}

/**
 * Resolves every symlink of `path` inside the image. `chain` starts with the
 * path asked for and gains one entry per link followed: the path it now
 * stands for (written lexically normalized), so `/sbin/init` with
 * `/sbin -> usr/sbin` and `/usr/sbin/init -> ../lib/systemd/systemd` gives
 * `/sbin/init`, `/usr/sbin/init`, `/usr/lib/systemd/systemd`.
 */
export async function resolveImagePath(fs: ImageFilesystem, path: string): Promise<ResolvedPath> {
  const chain = [posix.normalize(absolute(components(path)))];
  const resolved: string[] = []; // real directories only: never a link
  // Each component remembers the link whose text it came from, to name a dangling link.
  let remaining: { name: string; link?: string }[] = components(path).map((name) => ({ name }));
  let followed = 0;
  let entry: ImageEntry = { type: "dir", mode: 0o755 };

  while (remaining.length > 0) {
    const [{ name, link: from }, ...rest] = remaining;
    remaining = rest;
    if (name === "..") {
      resolved.pop();
      entry = { type: "dir", mode: 0o755 };
      continue;
    }
    const here = absolute([...resolved, name]);
    const found = await fs.lstat(here);
    if (!found) {
      const reason = from ? `${here} does not exist (${from} is a dangling link)` : `${here} does not exist`;
      return { found: false, chain, reason };
    }
    if (found.type === "symlink") {
      followed += 1;
      if (followed > maxSymlinks) {
        return { found: false, chain, reason: `more than ${maxSymlinks} symlinks (a loop) at ${here}` };
      }
      const text = found.linkTarget ?? "";
      if (text === "") return { found: false, chain, reason: `${here} is an empty symlink` };
      if (text.startsWith("/")) resolved.length = 0;
      remaining = [...components(text).map((part) => ({ name: part, link: here })), ...remaining];
      chain.push(posix.normalize(absolute([...resolved, ...remaining.map((r) => r.name)])));
      continue;
    }
    if (remaining.length > 0 && found.type !== "dir") {
      return { found: false, chain, reason: `${here} is not a directory` };
    }
    resolved.push(name);
    entry = found;
  }
  return { found: true, chain, target: absolute(resolved), entry };
}

/** An executable regular file at `path` (after every link), as the kernel would exec it. */
export async function findExecutable(fs: ImageFilesystem, path: string): Promise<InitPath> {
  const resolved = await resolveImagePath(fs, path);
  if (!resolved.found) return resolved;
  const { chain, target, entry } = resolved;
  if (entry.type !== "file") {
    const what = entry.type === "dir" ? "a directory" : "not a regular file";
    return { found: false, chain, reason: `${target} is ${what}` };
  }
  if ((entry.mode & 0o111) === 0) return { found: false, chain, reason: `${target} is not executable` };
  return { found: true, chain, target };
}

/** The entrypoint rule: where the image's `/sbin/init` leads, or why it counts as absent. */
export function findInitPath(fs: ImageFilesystem, path = "/sbin/init"): Promise<InitPath> {
  return findExecutable(fs, path);
}

/**
 * The entrypoint rule for an image already in `docker`'s engine: a
 * throwaway container is created (never started), read, and removed.
 */
export function inspectImageInit(docker: Dockerode, image: string): Promise<InitPath> {
  return withImageFilesystem(docker, image, (fs) => findInitPath(fs));
}
