/**
 * The first page's JavaScript stays small: a production build, then every JS
 * file index.html loads (its module script and modulepreloads) and whatever
 * they import statically, gzipped one by one. Lazy pages (the terminal with
 * xterm.js, the admin pages) are not part of it.
 */

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { buildDashboard } from "./harness.js";

const budgetBytes = 250 * 1024;

/** The JS files a page loads before it can render: scripts, modulepreloads and their static imports. */
export function firstPageScripts(dist: string): string[] {
  const html = readFileSync(join(dist, "index.html"), "utf8");
  const queue = [
    ...html.matchAll(/<(?:script[^>]*\bsrc|link[^>]*rel="modulepreload"[^>]*\bhref)="\/([^"]+\.js)"/g),
  ].map((m) => m[1]);
  const seen = new Set<string>();
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const code = readFileSync(join(dist, file), "utf8");
    const folder = file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "";
    // Static imports only: `import x from "./a.js"`, `import "./a.js"`, `export * from "./a.js"`; not import("./a.js").
    for (const m of code.matchAll(/(?:\bfrom|\bimport)\s*["']\.\/([^"']+\.js)["']/g)) queue.push(folder + m[1]);
  }
  return [...seen];
}

test("the first page's JavaScript is under 250 KB gzipped", { timeout: 180_000 }, async () => {
  const dist = mkdtempSync(join(tmpdir(), "cvm-web-bundle-"));
  try {
    await buildDashboard(dist);
    const scripts = firstPageScripts(dist);
    assert.ok(scripts.length > 0, "index.html loads no JavaScript");
    const sizes = scripts.map((file) => ({
      file,
      gzip: gzipSync(readFileSync(join(dist, file)), { level: 9 }).length,
    }));
    const total = sizes.reduce((sum, s) => sum + s.gzip, 0);
    console.log(
      `first page JS: ${(total / 1024).toFixed(1)} KB gzipped in ${sizes.length} files (${sizes
        .map((s) => `${s.file} ${(s.gzip / 1024).toFixed(1)} KB`)
        .join(", ")})`,
    );
    assert.ok(!scripts.some((file) => /TerminalPage/.test(file)), "xterm.js should load only with the terminal");
    assert.ok(total < budgetBytes, `first page JS is ${(total / 1024).toFixed(1)} KB gzipped, over 250 KB`);
  } finally {
    rmSync(dist, { recursive: true, force: true });
  }
});
