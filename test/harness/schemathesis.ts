/**
 * Schemathesis (from PyPI, pinned) in a virtualenv in the machine cache,
 * installed on first use and reused by every later run: the API fuzz test
 * drives it against the server's own OpenAPI document.
 */

import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { machineCache } from "./services.js";

const run = promisify(execFile);

export const schemathesisVersion = "4.32.5";
const venv = join(machineCache, "schemathesis");
export const schemathesisBin = join(venv, "bin", "schemathesis");
const stamp = join(venv, "cvm-installed-version");

/** The schemathesis binary, installing it first when this machine has none (about a minute, once). */
export async function ensureSchemathesis(): Promise<string> {
  const current = () => existsSync(stamp) && readFileSync(stamp, "utf8").trim() === schemathesisVersion;
  if (current()) return schemathesisBin;
  const lock = `${venv}.lock`;
  mkdirSync(machineCache, { recursive: true });
  for (let waited = 0; ; waited += 1000) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Another test run installs it; a lock older than ten minutes belongs to one that died.
      if (Date.now() - statSync(lock).mtimeMs > 600_000) rmSync(lock, { recursive: true, force: true });
      if (waited > 600_000) throw new Error("waited 10 minutes for another schemathesis install");
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (current()) return schemathesisBin;
    }
  }
  try {
    if (!current()) {
      await run("python3", ["-m", "venv", venv]);
      await run(join(venv, "bin", "pip"), ["install", "--quiet", `schemathesis==${schemathesisVersion}`], {
        maxBuffer: 16 * 1024 * 1024,
      });
      writeFileSync(stamp, `${schemathesisVersion}\n`);
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
  return schemathesisBin;
}
