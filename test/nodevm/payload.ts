/**
 * What the node VM needs of cvm, as one tar file the VM reads from a disk:
 * cvm-in-vm.ts and the supervisor code it imports bundled into one ESM file
 * (nothing to transpile or resolve under emulation), the files the supervisor
 * reads beside its modules (seccomp profile, start gate source), and the
 * start gate compiled here (the VM has no compiler), and image.json: how to
 * bring the CVM image in (see cvmImageFile).
 *
 * And the CVM image, as a file the VM reads from another disk: the builder's
 * cached root tarball when present, else a `docker save` of the image from
 * the host's engine.
 */

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { imageCacheDir, recipeHash } from "../../images/build.js";
import { recipeNamed } from "../../images/recipes.js";
import { ensureGateBinary } from "../../src/supervisor/start-gate.js";

const run = promisify(execFile);
const repo = fileURLToPath(new URL("../../", import.meta.url));

export interface Payload {
  /** A tar file; inside the VM: tar -xf DEV -C DIR, then node DIR/cvm-in-vm.mjs. */
  tar: string;
  dispose(): Promise<void>;
}

export async function buildPayload(image: CvmImageFile): Promise<Payload> {
  const dir = await mkdtemp("/tmp/cvm-nodevm-payload-");
  const tree = join(dir, "tree");
  await build({
    entryPoints: [join(repo, "test/nodevm/cvm-in-vm.ts")],
    outfile: join(tree, "cvm-in-vm.mjs"),
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
  const { format, reference, changes } = image;
  await writeFile(join(tree, "image.json"), JSON.stringify({ format, reference, changes }));
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
