/**
 * An image's own filesystem, read without running anything in it: through a
 * created (never started) container and the engine's archive API. Every read
 * is an lstat or a tar of one path, so symlinks are seen as links, never
 * followed by the engine on our behalf (the entrypoint rule resolves them
 * itself, against the image's root).
 */

import type Dockerode from "dockerode";
import { isNotFound } from "../docker/index.js";

export type ImageEntryType = "file" | "dir" | "symlink" | "other";

export interface ImageEntry {
  type: ImageEntryType;
  /** The link's own text (readlink), for symlinks. */
  linkTarget?: string;
  /** Permission bits (0o7777). */
  mode: number;
}

/** The one question the entrypoint rule asks of an image. */
export interface ImageFilesystem {
  /** Undefined when nothing is at that path. `path` is absolute and holds no symlink before its last component. */
  lstat(path: string): Promise<ImageEntry | undefined>;
}

/** One member of a tar stream. */
export interface TarEntry {
  name: string;
  type: ImageEntryType;
  linkName: string;
  mode: number;
  content: Buffer;
}

const tarTypes: Record<string, ImageEntryType> = { "0": "file", "\0": "file", "7": "file", "5": "dir", "2": "symlink" };

function cString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString("utf8");
}

function octal(block: Buffer, start: number, length: number): number {
  const text = cString(block, start, length).trim();
  return text === "" ? 0 : Number.parseInt(text, 8);
}

/** PAX extended header records: "<len> key=value\n". */
function paxRecords(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number.parseInt(data.subarray(at, space).toString("ascii"), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = data.subarray(space + 1, at + length - 1).toString("utf8");
    const equals = record.indexOf("=");
    if (equals > 0) records[record.slice(0, equals)] = record.slice(equals + 1);
    at += length;
  }
  return records;
}

/**
 * Reads a whole (small) tar archive: ustar, with the PAX and GNU long-name
 * headers Go's archive/tar writes for long paths.
 */
export function readTar(archive: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  let pending: { path?: string; linkpath?: string } = {};
  let at = 0;
  while (at + 512 <= archive.length) {
    const header = archive.subarray(at, at + 512);
    if (header.every((byte) => byte === 0)) break;
    const size = octal(header, 124, 12);
    const flag = String.fromCharCode(header[156]);
    const content = archive.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (flag === "x") {
      pending = { ...pending, ...paxRecords(content) };
      continue;
    }
    if (flag === "L" || flag === "K") {
      const text = cString(content, 0, content.length);
      pending = flag === "L" ? { ...pending, path: text } : { ...pending, linkpath: text };
      continue;
    }
    if (flag === "g") continue;
    const prefix = cString(header, 345, 155);
    const name = pending.path ?? (prefix ? `${prefix}/${cString(header, 0, 100)}` : cString(header, 0, 100));
    entries.push({
      name: name.replace(/\/$/, ""),
      type: tarTypes[flag] ?? "other",
      linkName: pending.linkpath ?? cString(header, 157, 100),
      mode: octal(header, 100, 8) & 0o7777,
      content: Buffer.from(content),
    });
    pending = {};
  }
  return entries;
}

// Go's os.FileMode type bits, as the engine reports them in X-Docker-Container-Path-Stat.
// FileMode is a uint32 whose top bit overflows JavaScript's bitwise operators: test bits by division.
const goTypeBits: [number, ImageEntryType][] = [
  [31, "dir"],
  [27, "symlink"],
  [26, "other"], // device
  [25, "other"], // named pipe
  [24, "other"], // socket
  [21, "other"], // character device
  [19, "other"], // irregular
];

function entryType(goMode: number): ImageEntryType {
  const found = goTypeBits.find(([bit]) => Math.floor(goMode / 2 ** bit) % 2 === 1);
  return found ? found[1] : "file";
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** The files of one created container, read through the engine's archive API. */
export class ContainerFilesystem implements ImageFilesystem {
  constructor(private readonly container: Dockerode.Container) {}

  async lstat(path: string): Promise<ImageEntry | undefined> {
    let response: { headers: Record<string, string | string[] | undefined>; resume(): void };
    try {
      response = (await this.container.infoArchive({ path })) as unknown as typeof response;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    response.resume();
    const header = response.headers["x-docker-container-path-stat"];
    if (typeof header !== "string") throw new Error(`engine gave no path stat for ${path}`);
    const stat = JSON.parse(Buffer.from(header, "base64").toString("utf8")) as { mode: number };
    const type = entryType(stat.mode);
    const mode = stat.mode % 0o1000;
    if (type !== "symlink") return { type, mode };
    // The stat's linkTarget is the engine's own full resolution; the rule needs the link's text.
    const [link] = await this.tar(path);
    return { type, mode, linkTarget: link?.linkName ?? "" };
  }

  /** A tar of one path (a file, a link, or a directory with everything below it); empty when absent. */
  async tar(path: string): Promise<TarEntry[]> {
    try {
      return readTar(await collect(await this.container.getArchive({ path })));
    } catch (error) {
      if (isNotFound(error)) return [];
      throw error;
    }
  }
}

/**
 * Runs `use` against a throwaway container of `image` (created, never
 * started, never networked) and removes it afterwards, whatever happens.
 */
export async function withImageFilesystem<T>(
  docker: Dockerode,
  image: string,
  use: (fs: ContainerFilesystem, container: Dockerode.Container) => Promise<T>,
): Promise<T> {
  const container = await docker.createContainer({
    name: `cvm-inspect-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    Image: image,
    // Nothing runs: an entrypoint is only needed because create refuses an image without a command.
    Entrypoint: ["/cvm-inspect-never-runs"],
    Cmd: [],
    NetworkDisabled: true,
    Labels: { "cvm.inspect": "true" },
  });
  try {
    return await use(new ContainerFilesystem(container), container);
  } finally {
    await container.remove({ force: true, v: true }).catch(() => undefined);
  }
}
