/**
 * cvm's own small C programs (the CVM start gate, the namespace bridge) are
 * compiled on the node at first use, static so that they run anywhere: in
 * any image, with or without a libc, and on the node itself. One compiled
 * file per source version, shared by every process that asks at once. A Pod
 * has no compiler: the supervisor image carries them prebuilt, named the same.
 */

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { access, chmod, mkdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { CvmError } from "../core/errors.js";

const run = promisify(execFile);

/** Where the supervisor image keeps them, built from the same sources (images/recipes.ts). */
export const prebuiltBinaryDir = "/usr/libexec/cvm";

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * The prebuilt `<name>-<hash of the source>` where the image has it, else
 * compiled from `source` into `binDir` unless it is there; returns its path.
 */
export async function ensureStaticBinary(
  source: string,
  binDir: string,
  name: string,
  prebuiltDir = prebuiltBinaryDir,
): Promise<string> {
  const text = await readFile(source);
  const file = `${name}-${createHash("sha256").update(text).digest("hex").slice(0, 12)}`;
  if (await exists(join(prebuiltDir, file))) return join(prebuiltDir, file);
  const binary = join(binDir, file);
  if (await exists(binary)) return binary;
  await mkdir(binDir, { recursive: true, mode: 0o755 });
  const partial = `${binary}.${process.pid}.${Math.random().toString(36).slice(2)}.partial`;
  try {
    await run("gcc", ["-static", "-O2", "-s", "-o", partial, source]);
  } catch (error) {
    await rm(partial, { force: true });
    throw new CvmError("UNAVAILABLE", `Could not build cvm's ${name}`, {
      detail: `gcc -static failed (install gcc and libc6-dev: scripts/provision.sh): ${(error as Error).message}`,
      cause: error,
    });
  }
  await chmod(partial, 0o755);
  await rename(partial, binary);
  return binary;
}
