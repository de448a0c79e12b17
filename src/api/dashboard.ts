/**
 * The built dashboard (web/dist) at the server's root: hashed assets cached
 * for a year, index.html revalidated every time and answered for every client
 * route, text compressed once and kept in memory. When web/dist is missing in
 * a checkout that has Vite, the first request starts `npm run build:web`'s
 * build and a page says to wait; without Vite the page says what to run.
 */

import { spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { extname, join, normalize, sep } from "node:path";
import { gzipSync } from "node:zlib";
import { Hono } from "hono";
import type { Logger } from "pino";

const projectRoot = join(import.meta.dirname, "..", "..");
export const defaultWebRoot = join(projectRoot, "web", "dist");

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json",
};
const compressible = new Set([".html", ".js", ".css", ".json", ".svg", ".txt", ".map"]);

/** Vite puts content-hashed files under assets/: they never change, so browsers keep them. */
const immutable = "public, max-age=31536000, immutable";
const revalidate = "no-cache";

interface CachedFile {
  mtimeMs: number;
  size: number;
  body: Uint8Array<ArrayBuffer>;
  gzipped?: Uint8Array<ArrayBuffer>;
  etag: string;
}

export interface DashboardOptions {
  /** The built dashboard; default web/dist of this checkout. */
  webRoot?: string;
  /** Build web/dist with Vite on the first request when it is missing; default: only for the default webRoot. */
  buildWhenMissing?: boolean;
  logger?: Logger;
}

const page = (title: string, body: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>cvm: ${title}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1b2330}code{background:#eef0f4;padding:.1rem .3rem;border-radius:4px}</style>
</head><body><h1>${title}</h1>${body}</body></html>`;

type BuildState = { kind: "idle" } | { kind: "building" } | { kind: "failed"; output: string };

const escapeHtml = (text: string) => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** A Hono app to mount at "/" after the API: `app.route("/", dashboard({ webRoot }))`. */
export function dashboard(options: DashboardOptions = {}): Hono {
  const root = normalize(options.webRoot ?? defaultWebRoot);
  const vite = join(projectRoot, "node_modules", "vite", "bin", "vite.js");
  const mayBuild = options.buildWhenMissing ?? root === normalize(defaultWebRoot);
  const cache = new Map<string, CachedFile>();
  let build: BuildState = { kind: "idle" };

  const startBuild = () => {
    build = { kind: "building" };
    options.logger?.info({ webRoot: root }, "web/dist is missing; building the dashboard");
    const child = spawn(process.execPath, [vite, "build", "--config", join(projectRoot, "web", "vite.config.ts")], {
      cwd: projectRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("error", (error) => (build = { kind: "failed", output: String(error) }));
    child.on("exit", (code) => {
      if (code === 0) build = { kind: "idle" };
      else build = { kind: "failed", output: output.slice(-4000) };
      options.logger?.[code === 0 ? "info" : "error"]({ code }, "dashboard build finished");
    });
  };

  const read = (path: string): CachedFile | undefined => {
    let stat: ReturnType<typeof statSync>;
    try {
      stat = statSync(path);
    } catch {
      return undefined;
    }
    if (!stat.isFile()) return undefined;
    const known = cache.get(path);
    if (known && known.mtimeMs === stat.mtimeMs && known.size === stat.size) return known;
    // Copied once into their own buffers, so each answer hands them out as they are.
    const body = new Uint8Array(readFileSync(path));
    const file: CachedFile = {
      mtimeMs: stat.mtimeMs,
      size: stat.size,
      body,
      etag: `W/"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`,
      gzipped: compressible.has(extname(path)) && body.length > 1024 ? new Uint8Array(gzipSync(body)) : undefined,
    };
    cache.set(path, file);
    return file;
  };

  const app = new Hono();
  app.on(["GET", "HEAD"], "*", async (c) => {
    const index = join(root, "index.html");
    if (!existsSync(index)) {
      if (mayBuild && build.kind === "idle" && existsSync(vite)) startBuild();
      if (build.kind === "building") {
        c.header("retry-after", "3");
        c.header("cache-control", "no-store");
        return c.html(
          page(
            "Building the dashboard…",
            `<meta http-equiv="refresh" content="3"><p>The dashboard was not built yet, so the server is building it now (<code>npm run build:web</code>). This page reloads itself.</p>`,
          ),
          503,
        );
      }
      const failure = build.kind === "failed" ? `<pre>${escapeHtml(build.output)}</pre>` : "";
      c.header("cache-control", "no-store");
      return c.html(
        page(
          "The dashboard is not built",
          `<p>Run <code>npm run build:web</code> in the cvm checkout, then reload. The API answers at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> meanwhile.</p>${failure}`,
        ),
        503,
      );
    }

    let path: string;
    try {
      path = decodeURIComponent(new URL(c.req.url).pathname);
    } catch {
      return c.text("Bad path", 400);
    }
    const candidate = normalize(join(root, path));
    const inside = candidate === root || candidate.startsWith(root + sep);
    let file = inside && path !== "/" ? read(candidate) : undefined;
    let served = candidate;
    if (!file) {
      // A file that is not there is a 404; any other path is a page of the dashboard's own router.
      if (extname(path)) return c.text("Not found", 404);
      file = read(index);
      served = index;
      if (!file) return c.text("Not found", 404);
    }

    const extension = extname(served);
    c.header("content-type", contentTypes[extension] ?? "application/octet-stream");
    c.header("cache-control", served.startsWith(join(root, "assets") + sep) ? immutable : revalidate);
    c.header("etag", file.etag);
    c.header("x-content-type-options", "nosniff");
    if (file.gzipped) c.header("vary", "accept-encoding");
    if (c.req.header("if-none-match") === file.etag) return c.body(null, 304);
    const gzip = file.gzipped && /\bgzip\b/.test(c.req.header("accept-encoding") ?? "");
    if (gzip) c.header("content-encoding", "gzip");
    const body = gzip ? file.gzipped! : file.body;
    if (c.req.method === "HEAD") {
      c.header("content-length", String(body.length));
      return c.body(null, 200);
    }
    return c.body(body, 200);
  });
  return app;
}
