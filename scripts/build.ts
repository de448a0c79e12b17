/**
 * `npm run build`: what a release runs, and what `bin/cvm` and the images
 * execute. Compiles src/ to JavaScript in dist/ with esbuild, one output file
 * per source file in the same tree, with src/'s other files (the seccomp
 * profile, C sources) copied beside them, so every path a module finds
 * relative to itself holds in both trees. The CLI's entry, dist/cli/main.js,
 * is then one bundle of what every command loads (its command modules, the
 * client, commander), since reading and linking some twenty small modules
 * cost a third of the CLI's own start; what a command loads on demand stays
 * the per-file modules beside it. Last, the dashboard is built into web/dist.
 * `npm run build -- dist` compiles only dist/. Types are `npm run
 * typecheck`'s job: esbuild only strips them.
 *
 * dist/build.json records a hash of what went in, so `ensureDist` (the tests,
 * `npm test`) rebuilds exactly when the sources changed.
 */

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { build, type Plugin } from "esbuild";

export const root = join(import.meta.dirname, "..");
export const dist = join(root, "dist");
const src = join(root, "src");
const infoFile = "build.json";

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [path];
  });
}

/** The sources that make dist/: everything under src/ but the tests, and package.json (its dependencies). */
function inputs(): { code: string[]; assets: string[] } {
  const files = filesUnder(src).filter((file) => !/\.test\.tsx?$/.test(file));
  const code = files.filter((file) => /\.tsx?$/.test(file) && !file.endsWith(".d.ts"));
  return { code, assets: files.filter((file) => !code.includes(file)) };
}

function sourceHash(files: string[]): string {
  const hash = createHash("sha256");
  for (const file of [...files, join(root, "package.json")].sort()) {
    hash.update(relative(root, file)).update("\0").update(readFileSync(file)).update("\0");
  }
  return hash.digest("hex").slice(0, 16);
}

function builtHash(): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dist, infoFile), "utf8")) as { sources: string }).sources;
  } catch {
    return undefined;
  }
}

const cliDir = join(src, "cli");

/**
 * What the CLI's entry bundle takes in and what it leaves out. Bundled: cvm's
 * own modules it imports statically, and commander. Left as imports: every
 * other package (so a heavy one shows as loaded, and test/cli/startup.test.ts
 * sees it) and every dynamic import, whose relative path holds because the
 * bundle sits where src/cli/main.ts's own output would. A module from outside
 * src/cli that finds files or modules relative to itself would not hold
 * there, so the build refuses it.
 */
const cliEntryRules: Plugin = {
  name: "cvm-cli-entry",
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      const outsideCli = args.importer !== "" && !args.importer.startsWith(`${cliDir}/`);
      if (args.kind === "dynamic-import") {
        if (outsideCli && args.path.startsWith(".")) {
          return {
            errors: [
              {
                text: `${relative(root, args.importer)} imports ${args.path} on demand: its path would not hold in the CLI's bundle`,
              },
            ],
          };
        }
        return { path: args.path, external: true };
      }
      const bare = !args.path.startsWith(".") && !args.path.startsWith("/");
      if (bare && args.path !== "commander") return { path: args.path, external: true };
      return undefined;
    });
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.startsWith(`${cliDir}/`)) return undefined;
      const text = await readFile(args.path, "utf8");
      if (!text.includes("import.meta")) return undefined;
      return {
        errors: [
          { text: `${relative(root, args.path)} uses import.meta: its paths would not hold in the CLI's bundle` },
        ],
      };
    });
  },
};

/** dist/cli/main.js as one module (see cliEntryRules). */
async function bundleCliEntry(outdir: string): Promise<void> {
  await build({
    entryPoints: [join(cliDir, "main.ts")],
    outfile: join(outdir, "cli", "main.js"),
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: "linked",
    logLevel: "warning",
    plugins: [cliEntryRules],
    // commander is CommonJS and requires Node's modules; an ES module has no `require` of its own.
    banner: {
      js: 'import { createRequire as cvmCreateRequire } from "node:module";\nconst require = cvmCreateRequire(import.meta.url);',
    },
    allowOverwrite: true,
  });
}

/**
 * Compiles src/ into dist/. It builds beside dist/ and swaps the trees, so a
 * `cvm` started meanwhile runs the old build or the new one, never half of one.
 */
export async function buildDist(): Promise<{ ms: number; files: number }> {
  const started = Date.now();
  const { code, assets } = inputs();
  const partial = `${dist}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  try {
    await build({
      entryPoints: code,
      outdir: partial,
      outbase: src,
      format: "esm",
      platform: "node",
      target: "node20",
      sourcemap: "linked",
      logLevel: "warning",
    });
    await bundleCliEntry(partial);
    for (const asset of assets) {
      const target = join(partial, relative(src, asset));
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(asset, target);
    }
    writeFileSync(
      join(partial, infoFile),
      `${JSON.stringify({ sources: sourceHash([...code, ...assets]), at: new Date().toISOString() })}\n`,
    );
    const old = `${dist}.old-${process.pid}`;
    if (existsSync(dist)) renameSync(dist, old);
    renameSync(partial, dist);
    rmSync(old, { recursive: true, force: true });
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
  return { ms: Date.now() - started, files: code.length };
}

/** Builds dist/ unless it was built from exactly these sources; says whether it built. */
export async function ensureDist(): Promise<boolean> {
  const { code, assets } = inputs();
  if (builtHash() === sourceHash([...code, ...assets])) return false;
  await buildDist();
  return true;
}

function buildDashboard(): void {
  const vite = join(root, "node_modules", "vite", "bin", "vite.js");
  const result = spawnSync(process.execPath, [vite, "build", "--config", join(root, "web", "vite.config.ts")], {
    cwd: root,
    stdio: "inherit",
  });
  if (result.status !== 0)
    throw new Error(`the dashboard's build failed (vite exited ${result.status ?? result.signal})`);
}

async function main(): Promise<void> {
  const only = process.argv[2];
  if (only !== undefined && only !== "dist") throw new Error(`npm run build takes nothing or "dist", not ${only}`);
  const { ms, files } = await buildDist();
  console.log(`dist/: ${files} modules compiled in ${ms} ms`);
  if (only === "dist") return;
  buildDashboard();
}

if (process.argv[1] === import.meta.filename) {
  // esbuild has printed what failed, with its place in the sources.
  await main().catch((error: Error) => {
    console.error(`npm run build: ${error.message.split("\n")[0]}`);
    process.exitCode = 1;
  });
}
