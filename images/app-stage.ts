/**
 * This checkout of cvm as the server and supervisor images carry it: the
 * compiled JavaScript (dist/, what bin/cvm runs; scripts/build.ts), the
 * production dependencies (the checkout's own installed modules,
 * pruned offline, so no registry is needed) and the built dashboard, staged
 * under the machine cache by the hash of what went in. The images are rebuilt
 * exactly when that hash changes.
 */

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { ensureDist } from "../scripts/build.js";

const run = promisify(execFile);

export const checkoutRoot = join(import.meta.dirname, "..");

/** What an image's /opt/cvm is made from (src/ compiled into dist/); the web sources only feed the built dashboard. */
const appPaths = ["package.json", "package-lock.json", "bin", "src"];
/** What is copied: the compiled tree instead of the sources. */
const shippedPaths = ["package.json", "package-lock.json", "bin", "dist"];
const dashboardPaths = ["web"];
const skipped = new Set(["node_modules", "dist"]);

function filesUnder(path: string): string[] {
  const full = join(checkoutRoot, path);
  if (!existsSync(full)) return [];
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full)
    .filter((entry) => !skipped.has(entry))
    .sort()
    .flatMap((entry) => filesUnder(join(path, entry)));
}

let known: string | undefined;

/** A hash of every file the staged app is made from (tests included: they are small, and it keeps the rule simple). */
export function appHash(): string {
  if (known) return known;
  const hash = createHash("sha256");
  for (const file of [...appPaths, ...dashboardPaths].flatMap(filesUnder)) {
    hash
      .update(file)
      .update("\0")
      .update(readFileSync(join(checkoutRoot, file)))
      .update("\0");
  }
  known = hash.digest("hex").slice(0, 12);
  return known;
}

export function appVersion(): string {
  return (JSON.parse(readFileSync(join(checkoutRoot, "package.json"), "utf8")) as { version: string }).version;
}

/**
 * Stages the app (once per hash) and returns the directory to copy to the
 * image's /opt/cvm: dist/ (built here when the sources changed), `npm prune --omit=dev --offline` of the
 * checkout's node_modules (native modules built for this platform), and
 * web/dist built by Vite from the checkout.
 */
export function stageApp(cacheDir: string, log: (line: string) => void): Promise<string> {
  // Both images stage at once when built together: one staging serves them.
  staging ??= stage(cacheDir, log);
  return staging;
}

let staging: Promise<string> | undefined;

async function stage(cacheDir: string, log: (line: string) => void): Promise<string> {
  const stage = join(cacheDir, `app-${appHash()}`);
  if (existsSync(stage)) return stage;
  if (!existsSync(join(checkoutRoot, "node_modules"))) {
    throw new Error(`${checkoutRoot}/node_modules is missing: run npm ci first (the image carries its modules)`);
  }
  const partial = `${stage}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const started = Date.now();
  try {
    await ensureDist();
    await run("sh", [
      "-c",
      `tar -C "$0" -cf - ${[...shippedPaths, "node_modules"].join(" ")} | tar -C "$1" -xf -`,
      checkoutRoot,
      partial,
    ]);
    await run("npm", ["prune", "--omit=dev", "--offline", "--no-audit", "--no-fund"], {
      cwd: partial,
      maxBuffer: 16 * 1024 * 1024,
    });
    await run(
      process.execPath,
      [
        join(checkoutRoot, "node_modules", "vite", "bin", "vite.js"),
        "build",
        "--config",
        join(checkoutRoot, "web", "vite.config.ts"),
        "--outDir",
        join(partial, "web", "dist"),
        "--emptyOutDir",
        "--logLevel",
        "warn",
      ],
      { cwd: checkoutRoot, maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (error) {
    rmSync(partial, { recursive: true, force: true });
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`staging cvm for the images failed: ${stderr.trim().slice(-2000)}`, { cause: error });
  }
  // One staged app is enough: an older one belongs to sources that have moved on.
  for (const entry of readdirSync(cacheDir)) {
    if (/^app-[0-9a-f]{12}$/.test(entry) && entry !== `app-${appHash()}`)
      rmSync(join(cacheDir, entry), { recursive: true, force: true });
  }
  renameSync(partial, stage);
  log(`app: staged this checkout (${appHash()}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return stage;
}
