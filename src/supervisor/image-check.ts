/**
 * `cvm image check`: what an image will be as a CVM, told before anyone waits
 * for a build. Everything is read from the image's own filesystem through a
 * created, never started container, with the same symlink rule the
 * supervisor applies to `/sbin/init`.
 */

import type Dockerode from "dockerode";
import { ordinaryAccount, type PasswdEntry, parsePasswd } from "../core/login-account.js";
import { ignoring, pullError, pullWithRetry } from "../docker/index.js";
import { type ContainerFilesystem, type ImageFilesystem, withImageFilesystem } from "./image-filesystem.js";
import { findExecutable, findInitPath, type InitPath, resolveImagePath } from "./init-path.js";

/** What the check needs of an image beyond lstat: whole small files and the files of a directory. */
export interface ImageFiles extends ImageFilesystem {
  /** The content of a regular file at a path with no symlink in it; undefined when absent. */
  readFile(path: string): Promise<Buffer | undefined>;
  /** Names of the regular files directly in a directory with no symlink in its path. */
  listFiles(directory: string): Promise<string[]>;
}

/** `socket-enabled`: docker.socket is started at boot and dockerd on its first use (socket activation). */
export type DockerServiceState = "enabled" | "socket-enabled" | "preset-enabled" | "not-enabled" | "masked" | "absent";

export interface DefaultUser {
  name: string;
  uid?: number;
  source: "image config" | "/etc/passwd" | "none found: root";
}

export type VerdictId = "cvm-systemd-docker" | "cvm-systemd" | "cvm-other-init" | "cvm-minimal-init";

export interface ImageCheck {
  image: string;
  init: InitPath;
  systemd: InitPath;
  /** `/sbin/init` leads to the image's systemd. */
  initIsSystemd: boolean;
  dockerd: InitPath;
  dockerService: { state: DockerServiceState; evidence: string };
  defaultUser: DefaultUser;
  verdict: { id: VerdictId; summary: string };
}

const systemdPaths = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"];
const dockerdPaths = ["/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd"];
const unitDirectories = ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"];
const presetDirectories = [
  "/etc/systemd/system-preset",
  "/lib/systemd/system-preset",
  "/usr/lib/systemd/system-preset",
];

/** The first of `paths` that is an executable; otherwise the last one's answer. */
async function firstExecutable(fs: ImageFilesystem, paths: string[]): Promise<InitPath> {
  let answer: InitPath = { found: false, chain: [], reason: "no path given" };
  for (const path of paths) {
    answer = await findExecutable(fs, path);
    if (answer.found) return answer;
  }
  return answer;
}

/** Reads a file, following its links inside the image. */
export async function readImageFile(fs: ImageFiles, path: string): Promise<Buffer | undefined> {
  const resolved = await resolveImagePath(fs, path);
  if (!resolved.found || resolved.entry.type !== "file") return undefined;
  return fs.readFile(resolved.target);
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/**
 * systemd's preset rule: files from every preset directory sorted by name (a
 * name in /etc hides the same name below), the first line matching the unit
 * decides.
 */
export function presetDecision(
  files: { directory: string; name: string; text: string }[],
  unit: string,
): { enable: boolean; line: string; file: string } | undefined {
  const byName = new Map<string, { directory: string; name: string; text: string }>();
  for (const file of files) if (!byName.has(file.name)) byName.set(file.name, file);
  const ordered = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const file of ordered) {
    for (const raw of file.text.split("\n")) {
      const line = raw.trim();
      const match = /^(enable|disable)\s+(\S+)/.exec(line);
      if (match && globToRegExp(match[2]).test(unit)) {
        return { enable: match[1] === "enable", line, file: `${file.directory}/${file.name}` };
      }
    }
  }
  return undefined;
}

async function dockerServiceState(fs: ImageFiles): Promise<ImageCheck["dockerService"]> {
  const mask = await fs.lstat("/etc/systemd/system/docker.service");
  if (mask?.type === "symlink" && mask.linkTarget === "/dev/null") {
    return { state: "masked", evidence: "/etc/systemd/system/docker.service -> /dev/null" };
  }
  let unitFile: string | undefined;
  for (const directory of unitDirectories) {
    const resolved = await resolveImagePath(fs, `${directory}/docker.service`);
    if (resolved.found && resolved.entry.type === "file") {
      unitFile = resolved.chain[0];
      break;
    }
  }
  if (!unitFile) return { state: "absent", evidence: `no docker.service in ${unitDirectories.join(", ")}` };
  for (const directory of unitDirectories) {
    const wants = `${directory}/multi-user.target.wants/docker.service`;
    const resolved = await resolveImagePath(fs, wants);
    if (resolved.found && resolved.entry.type === "file") {
      return { state: "enabled", evidence: resolved.chain.join(" -> ") };
    }
  }
  for (const directory of unitDirectories) {
    const wants = `${directory}/sockets.target.wants/docker.socket`;
    const resolved = await resolveImagePath(fs, wants);
    if (resolved.found && resolved.entry.type === "file") {
      return { state: "socket-enabled", evidence: `${resolved.chain.join(" -> ")} (dockerd starts on first use)` };
    }
  }
  const presets: { directory: string; name: string; text: string }[] = [];
  const seen = new Set<string>();
  for (const directory of presetDirectories) {
    const resolved = await resolveImagePath(fs, directory);
    if (!resolved.found || resolved.entry.type !== "dir" || seen.has(resolved.target)) continue;
    seen.add(resolved.target);
    for (const name of (await fs.listFiles(resolved.target)).filter((n) => n.endsWith(".preset"))) {
      const text = (await fs.readFile(`${resolved.target}/${name}`))?.toString("utf8") ?? "";
      presets.push({ directory, name, text });
    }
  }
  const decision = presetDecision(presets, "docker.service");
  if (decision?.enable) {
    return {
      state: "preset-enabled",
      evidence: `${decision.file}: "${decision.line}" (applies when systemd presets units on first boot)`,
    };
  }
  const why = decision ? `; ${decision.file}: "${decision.line}"` : "";
  return { state: "not-enabled", evidence: `${unitFile} exists, no multi-user.target.wants link${why}` };
}

/** The image's configured user; else the first ordinary account (uid 1000 and up, not nobody); else root. */
export function defaultUser(configUser: string | undefined, passwd: PasswdEntry[]): DefaultUser {
  const configured = configUser?.split(":")[0];
  if (configured) {
    const entry = passwd.find((e) => e.name === configured || String(e.uid) === configured);
    if (entry) return { name: entry.name, uid: entry.uid, source: "image config" };
    return /^\d+$/.test(configured)
      ? { name: configured, uid: Number(configured), source: "image config" }
      : { name: configured, source: "image config" };
  }
  const ordinary = ordinaryAccount(passwd);
  if (ordinary) return { name: ordinary.name, uid: ordinary.uid, source: "/etc/passwd" };
  return { name: "root", uid: 0, source: "none found: root" };
}

type VerdictFacts = Pick<ImageCheck, "init" | "initIsSystemd" | "dockerService">;

/** The verdicts, most capable first; the first whose condition holds is the image's. */
const verdicts: { id: VerdictId; when(facts: VerdictFacts): boolean; summary(facts: VerdictFacts): string }[] = [
  {
    id: "cvm-systemd-docker",
    when: (f) => f.initIsSystemd && ["enabled", "socket-enabled", "preset-enabled"].includes(f.dockerService.state),
    summary: (f) =>
      f.dockerService.state === "socket-enabled"
        ? "CVM-ready with systemd and Docker: systemd runs as PID 1 and starts docker.service on the first use of its socket"
        : "CVM-ready with systemd and Docker: systemd runs as PID 1 and starts docker.service",
  },
  {
    id: "cvm-systemd",
    when: (f) => f.initIsSystemd,
    summary: (f) => `CVM-ready with systemd; Docker will not start by itself (docker.service ${f.dockerService.state})`,
  },
  {
    id: "cvm-other-init",
    when: (f) => f.init.found,
    summary: (f) =>
      `CVM with ${f.init.found ? f.init.target : "/sbin/init"} as PID 1, which is not systemd: systemd unavailable`,
  },
  {
    id: "cvm-minimal-init",
    when: () => true,
    summary: (f) =>
      `CVM without systemd: no usable /sbin/init (${f.init.found ? "" : f.init.reason}); it runs under a minimal init`,
  },
];

export function verdictOf(facts: VerdictFacts): ImageCheck["verdict"] {
  const verdict = verdicts.find((v) => v.when(facts))!;
  return { id: verdict.id, summary: verdict.summary(facts) };
}

/** The whole check over an image's files and its configured user. */
export async function checkImageFiles(image: string, fs: ImageFiles, configUser?: string): Promise<ImageCheck> {
  const init = await findInitPath(fs);
  const systemd = await firstExecutable(fs, systemdPaths);
  // Either systemd path may be the one /sbin/init leads to (an image without merged /usr has both).
  const systemdTargets = await Promise.all(systemdPaths.map((path) => findExecutable(fs, path)));
  const initIsSystemd = init.found && systemdTargets.some((s) => s.found && s.target === init.target);
  const dockerd = await firstExecutable(fs, dockerdPaths);
  const dockerService = await dockerServiceState(fs);
  const passwd = parsePasswd((await readImageFile(fs, "/etc/passwd"))?.toString("utf8") ?? "");
  const facts = { init, initIsSystemd, dockerService };
  return {
    image,
    init,
    systemd,
    initIsSystemd,
    dockerd,
    dockerService,
    defaultUser: defaultUser(configUser, passwd),
    verdict: verdictOf(facts),
  };
}

function filesOf(fs: ContainerFilesystem): ImageFiles {
  return {
    lstat: (path) => fs.lstat(path),
    async readFile(path) {
      const [entry] = await fs.tar(path);
      return entry?.type === "file" ? entry.content : undefined;
    },
    async listFiles(directory) {
      const base = directory.split("/").pop() ?? "";
      return (await fs.tar(directory))
        .filter(
          (e) => e.type === "file" && e.name.startsWith(`${base}/`) && !e.name.slice(base.length + 1).includes("/"),
        )
        .map((e) => e.name.slice(base.length + 1));
    },
  };
}

/** Makes sure the image is in the engine, pulling it (once: the user is waiting at a prompt) when it is not. */
async function ensureImage(docker: Dockerode, image: string): Promise<Dockerode.ImageInspectInfo> {
  const present = await ignoring([404], docker.getImage(image).inspect());
  if (present) return present;
  const failure = await pullWithRetry(docker, image, { log: async () => {}, attempts: 1 });
  if (failure) throw pullError(image, failure);
  return docker.getImage(image).inspect();
}

/** `cvm image check`: pulls the image when needed, reads it without running it. */
export async function checkImage(docker: Dockerode, image: string): Promise<ImageCheck> {
  const info = await ensureImage(docker, image);
  return withImageFilesystem(docker, image, (fs) =>
    checkImageFiles(image, filesOf(fs), info.Config?.User || undefined),
  );
}
