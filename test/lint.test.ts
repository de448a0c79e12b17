import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..");
const bin = (name: string) => join(root, "node_modules", ".bin", name);

test("the formatter and linter find nothing (biome check)", async () => {
  const result = await run(bin("biome"), ["check", "."], { cwd: root }).catch((error) => error);
  assert.equal(result.code ?? 0, 0, `${result.stdout}\n${result.stderr}`);
});

test("the TypeScript is strict-clean (tsc --noEmit)", async () => {
  const result = await run(bin("tsc"), ["--noEmit", "-p", "tsconfig.json"], { cwd: root }).catch((error) => error);
  assert.equal(result.code ?? 0, 0, `${result.stdout}\n${result.stderr}`);
});
