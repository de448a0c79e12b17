/**
 * The offline image builder: Debian's packages -> mmdebstrap root tarball
 * (cached by recipe hash under the machine cache) -> `docker import` into the
 * host engine -> pushed to a registry as <registry>/cvm/<name>:<hash> and
 * :latest, and the images carrying cvm itself (server, supervisor) also as
 * :<version of package.json>.
 *
 *   npm run images -- [--registry HOST:PORT] [--force] [name...]
 *   npm run images -- --registry registry.example.com server supervisor
 *
 * Everything is rebuilt from the recipes on a fresh machine; on this one only
 * what a recipe change made stale. One build runs per machine at a time (a lock
 * file), so parallel test runs wait for it instead of building twice.
 */

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { appHash, appVersion, stageApp } from "./app-stage.js";

/** The tag both images of this checkout carry: <version>-<sources hash>. */
export const checkoutTag = () => `${appVersion()}-${appHash()}`;

import { appDir, bakedImagesDir, type DebianSuite, type ImageRecipe, recipeNamed, recipes } from "./recipes.js";

const run = promisify(execFile);

/** Bumped when the builder itself changes what it makes from a recipe. */
const builderVersion = 1;

const machineCache = process.env.CVM_CACHE_DIR ?? "/var/cache/cvm";
export const imageCacheDir = join(machineCache, "images");
const aptCacheDir = join(machineCache, "apt");
export const defaultRegistry = process.env.CVM_TEST_REGISTRY ?? "127.0.0.1:5000";

const defaultSuite: DebianSuite = "bookworm";

function mirrors(suite: DebianSuite): string[] {
  return [
    `deb http://deb.debian.org/debian ${suite} main`,
    `deb http://deb.debian.org/debian ${suite}-updates main`,
    `deb http://deb.debian.org/debian-security ${suite}-security main`,
  ];
}

/** Builds started at once; the machine has two cores shared with everything else. */
const parallelBuilds = 2;

export interface BuiltImage {
  name: string;
  hash: string;
  /** <registry>/cvm/<name>:<hash>, the immutable reference tests use. */
  reference: string;
  /** The local engine's own name for it, cvm/<name>:latest. */
  localName: string;
  /** <registry>/cvm/<name>:<version>, for the images that carry cvm itself (what a chart names). */
  versionReference?: string;
  /**
   * <registry>/cvm/<name>:<version>-<sources hash>: the same tag on the server
   * and supervisor images of one checkout, so one chart value names both exactly.
   */
  checkoutReference?: string;
  /** The docker-save tarball, for recipes marked `saved`. */
  savedTar?: string;
}

type Log = (line: string) => void;

const hashes = new Map<string, string>();

/**
 * A recipe's hash covers the recipe, the images baked into it, the suite's
 * mirrors, this builder's version and, for the images carrying cvm, the
 * checkout's sources.
 */
export function recipeHash(recipe: ImageRecipe): string {
  const known = hashes.get(recipe.name);
  if (known) return known;
  const baked = (recipe.bakes ?? []).map((name) => recipeHash(recipeNamed(name)));
  const suite = recipe.suite ?? defaultSuite;
  const app = recipe.app ? appHash() : undefined;
  const hash = createHash("sha256")
    .update(JSON.stringify({ recipe, baked, suite, mirrors: mirrors(suite), builderVersion, app }))
    .digest("hex")
    .slice(0, 12);
  hashes.set(recipe.name, hash);
  return hash;
}

function describe(recipe: ImageRecipe, registry: string): BuiltImage {
  const hash = recipeHash(recipe);
  return {
    name: recipe.name,
    hash,
    reference: `${registry}/cvm/${recipe.name}:${hash}`,
    localName: `cvm/${recipe.name}:latest`,
    versionReference: recipe.app ? `${registry}/cvm/${recipe.name}:${appVersion()}` : undefined,
    checkoutReference: recipe.app ? `${registry}/cvm/${recipe.name}:${checkoutTag()}` : undefined,
    savedTar: recipe.saved ? join(imageCacheDir, `${recipe.name}-${hash}.docker.tar`) : undefined,
  };
}

const rootTarball = (recipe: ImageRecipe) => join(imageCacheDir, `${recipe.name}-${recipeHash(recipe)}.tar`);

async function docker(args: string[]): Promise<string> {
  const { stdout } = await run("docker", args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

/** mmdebstrap's arguments for one recipe; the .deb files are cached per recipe between rebuilds. */
function mmdebstrapArgs(recipe: ImageRecipe, output: string, app: string | undefined): string[] {
  const debs = join(aptCacheDir, recipe.name);
  mkdirSync(debs, { recursive: true });
  // The extract variant runs no customize hooks; its hooks run right after extraction instead.
  const hook = recipe.variant === "extract" ? "--extract-hook" : "--customize-hook";
  const bake = (recipe.bakes ?? []).flatMap((name) => {
    const baked = describe(recipeNamed(name), "");
    return [
      `${hook}=mkdir -p "$1${bakedImagesDir}"`,
      `${hook}=cp '${baked.savedTar}' "$1${bakedImagesDir}/${name}.tar"`,
      `${hook}=echo '${baked.localName}' > "$1${bakedImagesDir}/${name}.ref"`,
    ];
  });
  // The app goes in before the recipe's own hooks, which may build from it.
  const copyApp = app ? [`${hook}=mkdir -p "$1${appDir}" && cp -a '${app}/.' "$1${appDir}/"`] : [];
  const suite = recipe.suite ?? defaultSuite;
  return [
    `--variant=${recipe.variant}`,
    ...(recipe.architecture ? [`--architectures=${recipe.architecture}`] : []),
    "--mode=root",
    "--format=tar",
    "--quiet",
    ...(recipe.include.length > 0 ? [`--include=${recipe.include.join(",")}`] : []),
    "--skip=download/empty",
    "--skip=essential/unlink",
    `--setup-hook=mkdir -p "$1/var/cache/apt/archives"`,
    `--setup-hook=sync-in '${debs}' /var/cache/apt/archives/`,
    `${hook}=sync-out /var/cache/apt/archives '${debs}'`,
    ...bake,
    ...copyApp,
    ...recipe.customize.map((command) => `${hook}=${command}`),
    suite,
    output,
    ...mirrors(suite),
  ];
}

async function buildRootTarball(recipe: ImageRecipe, log: Log): Promise<string> {
  const tarball = rootTarball(recipe);
  if (existsSync(tarball)) {
    log(`${recipe.name}: root filesystem cached at ${tarball}`);
    return tarball;
  }
  const partial = `${tarball}.partial-${process.pid}`;
  const app = recipe.app ? await stageApp(imageCacheDir, log) : undefined;
  const started = Date.now();
  log(
    `${recipe.name}: mmdebstrap --variant=${recipe.variant} ${recipe.suite ?? defaultSuite} (${recipe.include.join(" ")})`,
  );
  try {
    await run("mmdebstrap", mmdebstrapArgs(recipe, partial, app), { maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    rmSync(partial, { force: true });
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`mmdebstrap failed for ${recipe.name}: ${stderr.trim().split("\n").slice(-15).join("\n")}`, {
      cause: error,
    });
  }
  // The images carrying cvm change with every commit: only the newest root is worth its space.
  if (recipe.app) {
    const stale = new RegExp(`^${recipe.name}-[0-9a-f]{12}\\.tar$`);
    for (const entry of readdirSync(imageCacheDir)) if (stale.test(entry)) rmSync(join(imageCacheDir, entry));
  }
  renameSync(partial, tarball);
  const mib = Math.round(statSync(tarball).size / 2 ** 20);
  log(`${recipe.name}: root filesystem ${mib} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return tarball;
}

/** Imports the root tarball, tags it locally and for the registry, pushes, and saves a tarball when asked. */
async function importAndPush(recipe: ImageRecipe, tarball: string, registry: string, log: Log): Promise<BuiltImage> {
  const image = describe(recipe, registry);
  const latest = `${registry}/cvm/${recipe.name}:latest`;
  const version =
    image.versionReference && image.checkoutReference
      ? [image.versionReference, image.checkoutReference, `cvm/${recipe.name}:${appVersion()}`]
      : [];
  const changes = [...recipe.changes, `LABEL dev.cvm.recipe=${recipe.name} dev.cvm.recipe-hash=${image.hash}`];
  const platform = recipe.architecture ? ["--platform", `linux/${recipe.architecture}`] : [];
  await docker(["import", ...platform, ...changes.flatMap((c) => ["--change", c]), tarball, image.reference]);
  for (const tag of [latest, image.localName, ...version]) await docker(["tag", image.reference, tag]);
  for (const tag of [image.reference, latest, ...version.slice(0, 2)]) await docker(["push", "--quiet", tag]);
  log(`${recipe.name}: pushed ${image.reference}${image.versionReference ? ` and ${image.versionReference}` : ""}`);
  if (image.savedTar && !existsSync(image.savedTar)) {
    const partial = `${image.savedTar}.partial-${process.pid}`;
    await docker(["save", "--output", partial, image.localName]);
    renameSync(partial, image.savedTar);
    log(`${recipe.name}: saved ${image.savedTar}`);
  }
  return image;
}

async function isCurrent(recipe: ImageRecipe, registry: string): Promise<boolean> {
  const image = describe(recipe, registry);
  if (image.savedTar && !existsSync(image.savedTar)) return false;
  if ((await manifestDigest(registry, recipe.name, image.hash)) === undefined) return false;
  // The version tag follows the newest build of this checkout.
  if (recipe.app && !(await sameManifest(registry, recipe.name, image.hash, appVersion()))) return false;
  if (recipe.app && !(await sameManifest(registry, recipe.name, image.hash, checkoutTag()))) return false;
  return true;
}

async function manifestDigest(registry: string, name: string, tag: string): Promise<string | undefined> {
  const response = await fetch(`http://${registry}/v2/cvm/${name}/manifests/${tag}`, {
    method: "HEAD",
    headers: {
      accept: "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
    },
  }).catch(() => undefined);
  return response?.ok ? (response.headers.get("docker-content-digest") ?? undefined) : undefined;
}

async function sameManifest(registry: string, name: string, a: string, b: string): Promise<boolean> {
  const [first, second] = await Promise.all([manifestDigest(registry, name, a), manifestDigest(registry, name, b)]);
  return first !== undefined && first === second;
}

/**
 * A current image the local engine no longer has (a `docker image prune`):
 * pulled back from the registry and tagged as its build tagged it, since
 * what runs on this engine finds it by those names.
 */
async function ensureLocal(recipe: ImageRecipe, image: BuiltImage, registry: string, log: Log): Promise<BuiltImage> {
  const present = await docker(["image", "inspect", "--format", "{{.Id}}", image.reference]).then(
    () => true,
    () => false,
  );
  if (present) return image;
  await docker(["pull", "--quiet", image.reference]);
  for (const tag of [`${registry}/cvm/${recipe.name}:latest`, image.localName])
    await docker(["tag", image.reference, tag]);
  log(`${recipe.name}: pulled ${image.reference} back into the local engine`);
  return image;
}

async function buildOne(recipe: ImageRecipe, registry: string, force: boolean, log: Log): Promise<BuiltImage> {
  if (!force && (await isCurrent(recipe, registry)))
    return ensureLocal(recipe, describe(recipe, registry), registry, log);
  if (force) {
    rmSync(rootTarball(recipe), { force: true });
    const { savedTar } = describe(recipe, registry);
    if (savedTar) rmSync(savedTar, { force: true });
  }
  return importAndPush(recipe, await buildRootTarball(recipe, log), registry, log);
}

/** Holds the machine-wide build lock while `work` runs; a lock left by a dead process is taken over. */
async function withBuildLock<T>(log: Log, work: () => Promise<T>): Promise<T> {
  mkdirSync(imageCacheDir, { recursive: true });
  const lock = join(imageCacheDir, "build.lock");
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(lock, "wx");
      writeFileSync(fd, String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number(readFileSync(lock, "utf8").trim());
      if (!holder || !processAlive(holder)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (!announced) log(`waiting for the image build of process ${holder}`);
      announced = true;
      await sleep(1000);
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface BuildOptions {
  names?: string[];
  registry?: string;
  force?: boolean;
  log?: Log;
}

/**
 * Makes each named image (all by default, plus what they bake in) current in
 * the registry, building at most `parallelBuilds` at once and each image only
 * after the images it bakes in.
 */
export async function buildImages(options: BuildOptions = {}): Promise<BuiltImage[]> {
  const registry = options.registry ?? defaultRegistry;
  const log = options.log ?? ((line: string) => console.error(line));
  const wanted = new Set<string>();
  const want = (name: string) => {
    for (const baked of recipeNamed(name).bakes ?? []) want(baked);
    wanted.add(name);
  };
  for (const name of options.names?.length ? options.names : recipes.map((r) => r.name)) want(name);

  const quick = await Promise.all([...wanted].map((name) => isCurrent(recipeNamed(name), registry)));
  if (!options.force && quick.every(Boolean)) {
    return Promise.all(
      [...wanted].map((name) => ensureLocal(recipeNamed(name), describe(recipeNamed(name), registry), registry, log)),
    );
  }

  return withBuildLock(log, async () => {
    const done = new Map<string, Promise<BuiltImage>>();
    let running = 0;
    const slots: (() => void)[] = [];
    const slot = async () => {
      while (running >= parallelBuilds) await new Promise<void>((resolve) => slots.push(resolve));
      running++;
    };
    const release = () => {
      running--;
      slots.shift()?.();
    };
    const start = (name: string): Promise<BuiltImage> => {
      const existing = done.get(name);
      if (existing) return existing;
      const recipe = recipeNamed(name);
      const promise = (async () => {
        await Promise.all((recipe.bakes ?? []).map(start));
        await slot();
        try {
          return await buildOne(recipe, registry, options.force ?? false, log);
        } finally {
          release();
        }
      })();
      done.set(name, promise);
      return promise;
    };
    return Promise.all([...wanted].map(start));
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const option = (flag: string) => {
    const at = args.indexOf(flag);
    return at >= 0 ? args.splice(at, 2)[1] : undefined;
  };
  const registry = option("--registry");
  const force = args.includes("--force");
  const names = args.filter((a) => !a.startsWith("--"));
  const started = Date.now();
  const built = await buildImages({ names, registry, force });
  for (const image of built) {
    const also = [image.versionReference, image.savedTar && `saved: ${image.savedTar}`].filter(Boolean);
    console.log(`${image.reference}${also.length > 0 ? `  (${also.join("; ")})` : ""}`);
  }
  console.error(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
