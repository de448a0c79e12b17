/**
 * What the node VM needs of cvm, as one tar file the VM reads from a disk:
 * the programs that run there (cvm-in-vm.ts, which builds a CVM with cvm's
 * supervisor, and doctor-in-vm.ts, cvm doctor's local checks), each bundled
 * with the cvm code it imports into one ESM file (nothing to transpile or
 * resolve under emulation); the files the supervisor reads beside its modules
 * (seccomp profile, start gate source); the start gate compiled here (the VM
 * has no compiler); and image.json: how to bring the CVM image in (see cvmImageFile).
 *
 * And cvm's engine data root with the CVM image already in it, as an ext4
 * disk image (engineSeed): importing the image under emulation takes many
 * minutes; here it takes seconds, and the layers are the same bytes (overlay2,
 * remapped to the same dockremap range as in the VM).
 */

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { pino } from "pino";
import { imageCacheDir, recipeHash } from "../../images/build.js";
import { nodeVmCacheDir } from "../../images/nodevm/build.js";
import { recipeNamed } from "../../images/recipes.js";
import { CvmEngine } from "../../src/supervisor/engine.js";
import { ensureGateBinary } from "../../src/supervisor/start-gate.js";

const run = promisify(execFile);
const repo = fileURLToPath(new URL("../../", import.meta.url));

export interface Payload {
  /** A tar file; inside the VM: tar -xf DEV -C DIR, then node DIR/cvm-in-vm.mjs or DIR/doctor-in-vm.mjs. */
  tar: string;
  dispose(): Promise<void>;
}

export async function buildPayload(image: CvmImageFile): Promise<Payload> {
  const dir = await mkdtemp("/tmp/cvm-nodevm-payload-");
  const tree = join(dir, "tree");
  await build({
    entryPoints: ["cvm-in-vm.ts", "doctor-in-vm.ts"].map((file) => join(repo, "test/nodevm", file)),
    outdir: tree,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // ssh2 (under dockerode) tries its optional native addons and falls back without them.
    external: ["cpu-features", "*.node"],
    banner: {
      // CommonJS dependencies (dockerode's ssh2) read require and __dirname at load time.
      js: [
        "import { createRequire as __cvmRequire } from 'node:module';",
        "import { fileURLToPath as __cvmPath } from 'node:url';",
        "const require = __cvmRequire(import.meta.url);",
        "const __filename = __cvmPath(import.meta.url);",
        "const __dirname = __cvmPath(new URL('.', import.meta.url));",
      ].join(" "),
    },
    logLevel: "error",
  });
  await mkdir(join(tree, "gate"), { recursive: true });
  await copyFile(join(repo, "src/supervisor/gate/cvm-gate.c"), join(tree, "gate/cvm-gate.c"));
  await copyFile(join(repo, "src/supervisor/seccomp-docker-default.json"), join(tree, "seccomp-docker-default.json"));
  await mkdir(join(tree, "bin"));
  await ensureGateBinary(join(tree, "bin"));
  await writeFile(join(tree, "image.json"), JSON.stringify({ reference: image.reference }));
  const tar = join(dir, "payload.tar");
  await run("tar", ["-cf", tar, "-C", tree, "."]);
  return { tar, dispose: () => rm(dir, { recursive: true, force: true }) };
}

export interface CvmImageFile {
  file: string;
  format: "rootfs" | "archive";
  /** The name it gets in the VM's cvm engine. */
  reference: string;
  /** For `docker import` of a root tarball: the recipe's image config. */
  changes: string[];
}

/** The systemd+docker CVM image as a file: the cached root tarball, or a docker save of `reference` (cached by image id). */
export async function cvmImageFile(reference: string): Promise<CvmImageFile> {
  const recipe = recipeNamed("debian-systemd-docker");
  const rootTarball = join(imageCacheDir, `${recipe.name}-${recipeHash(recipe)}.tar`);
  const local = "cvm/debian-systemd-docker:nodevm";
  if (existsSync(rootTarball)) {
    return { file: rootTarball, format: "rootfs", reference: local, changes: recipe.changes };
  }
  const { stdout } = await run("docker", ["image", "inspect", "--format", "{{.Id}}", reference]);
  const id = stdout
    .trim()
    .replace(/^sha256:/, "")
    .slice(0, 12);
  const saved = join(imageCacheDir, `nodevm-${id}.docker.tar`);
  if (!existsSync(saved)) {
    const partial = `${saved}.partial-${process.pid}`;
    await run("docker", ["save", "--output", partial, reference]);
    await rename(partial, saved);
  }
  return { file: saved, format: "archive", reference, changes: [] };
}

async function loadImage(socket: string, image: CvmImageFile): Promise<void> {
  const host = `unix://${socket}`;
  const args =
    image.format === "rootfs"
      ? ["-H", host, "import", ...image.changes.flatMap((c) => ["--change", c]), image.file, image.reference]
      : ["-H", host, "load", "--quiet", "--input", image.file];
  await run("docker", args, { maxBuffer: 16 * 1024 * 1024 });
  await run("docker", ["-H", host, "image", "inspect", image.reference]);
}

/**
 * cvm's engine data root holding `image`, as an ext4 disk image cached under
 * the node VM cache: a cvm engine started here on a scratch data dir (cvm's
 * own CvmEngine: userns-remap, overlay2) imports it, stops, and mkfs.ext4 -d
 * copies its data root. The VM mounts it (through an overlay) as its engine's
 * data root.
 */
export async function engineSeed(image: CvmImageFile): Promise<string> {
  const info = await stat(image.file);
  const key = createHash("sha256")
    .update(JSON.stringify({ image, size: info.size, mtime: info.mtimeMs, seedVersion: 1 }))
    .digest("hex")
    .slice(0, 12);
  const seed = join(nodeVmCacheDir, `engine-seed-${key}.raw`);
  if (existsSync(seed)) return seed;
  await mkdir(nodeVmCacheDir, { recursive: true });
  for (const old of await readdir(nodeVmCacheDir)) {
    if (old.startsWith("engine-seed-")) await rm(join(nodeVmCacheDir, old), { force: true });
  }
  // Short: the engine's exec root holds unix sockets (108-byte paths).
  const dataDir = await mkdtemp("/tmp/cvm-nvseed-");
  await chmod(dataDir, 0o711);
  const engine = new CvmEngine({ dataDir, logger: pino({ level: "warn" }) });
  const partial = `${seed}.partial-${process.pid}`;
  try {
    await engine.ensure();
    await loadImage(engine.paths.socket, image);
    await engine.close();
    // The VM's engine makes its own network (another bridge name); the rest is the image.
    const root = engine.root as { uid: number; gid: number };
    await rm(join(engine.paths.dataRoot, `${root.uid}.${root.gid}`, "network"), { recursive: true, force: true });
    await run("truncate", ["-s", "6G", partial]);
    await run("mkfs.ext4", ["-q", "-F", "-L", "cvm-engine", "-d", engine.paths.dataRoot, partial]);
    await rename(partial, seed);
    return seed;
  } finally {
    await engine.close();
    await rm(partial, { force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
}
