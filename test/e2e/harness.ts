/**
 * What the dashboard's browser tests share: a production build of the
 * dashboard (rebuilt only when web/ changed), a real cvm server on a fresh
 * data dir, Debian's Chromium driven by playwright-core, screenshots at two
 * widths, and a watch on the browser console that fails a test on any error.
 */

import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from "node:net";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { startTestServer, type TestServer } from "../harness/server.js";

export const root = join(import.meta.dirname, "..", "..");
export const webDist = join(root, "web", "dist");

export const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function newestMtime(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/** Runs `vite build` (the same as `npm run build:web`), into web/dist or another directory. */
export function buildDashboard(outDir = webDist): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        join(root, "node_modules", "vite", "bin", "vite.js"),
        "build",
        "--config",
        join(root, "web", "vite.config.ts"),
        "--outDir",
        outDir,
        "--emptyOutDir",
        "--logLevel",
        "warn",
      ],
      { cwd: root, stdio: ["ignore", "inherit", "inherit"] },
    );
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`vite build exited with ${code}`))));
  });
}

/**
 * web/dist, current with web/src and the client it imports. Several test
 * files may ask at once: a lock directory lets one build while the others wait.
 */
export async function ensureDashboardBuilt(): Promise<void> {
  const sources = Math.max(
    newestMtime(join(root, "web", "src")),
    newestMtime(join(root, "web", "index.html")),
    newestMtime(join(root, "web", "vite.config.ts")),
    newestMtime(join(root, "src", "client")),
    newestMtime(join(root, "src", "core")),
    newestMtime(join(root, "src", "api", "contract.ts")),
  );
  const fresh = () => {
    try {
      return statSync(join(webDist, "index.html")).mtimeMs > sources;
    } catch {
      return false;
    }
  };
  const lock = join(root, ".cache", "web-build.lock");
  mkdirSync(join(root, ".cache"), { recursive: true });
  for (let waited = 0; !fresh(); waited += 500) {
    try {
      mkdirSync(lock);
    } catch {
      // A lock older than two minutes belongs to a build that died.
      if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true });
      if (waited > 180_000) throw new Error("waited 3 minutes for another dashboard build");
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    try {
      if (!fresh()) await buildDashboard();
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

/** A real cvm server on a fresh SQLite data dir, serving web/dist. */
export async function startDashboardServer(): Promise<TestServer> {
  await ensureDashboardBuilt();
  return startTestServer({ webRoot: webDist, cvms: true });
}

export function launchChromium(): Promise<Browser> {
  // playwright gives every launch a fresh temporary profile (user data dir).
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs });
}

/**
 * Every console error and uncaught page error, as text. Tests assert the list
 * is empty; `expect` names the failed requests a test causes on purpose
 * (a 400 with validations, a 401 for a wrong password).
 */
export function watchConsole(page: Page): { errors: string[]; expect(pattern: RegExp): void } {
  const errors: string[] = [];
  // Engines on this host add and remove network interfaces (a veth per container, any test's), and
  // Chromium then cuts its open requests with ERR_NETWORK_CHANGED. Not the dashboard's error: its
  // streams reconnect, which the flows check.
  const expected: RegExp[] = [/net::ERR_NETWORK_CHANGED/];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = `${message.text()} (${message.location().url})`;
    if (!expected.some((pattern) => pattern.test(text))) errors.push(text);
  });
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.stack ?? error.message}`));
  return { errors, expect: (pattern) => expected.push(pattern) };
}

export const widths = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } } as const;

/** Screenshots of the page as it is now, at 1280 and 390 px wide, into $CVM_TEST_ARTIFACTS/screenshots. */
export async function screenshots(page: Page, name: string): Promise<void> {
  const dir = join(process.env.CVM_TEST_ARTIFACTS ?? join(root, "artifacts"), "screenshots");
  mkdirSync(dir, { recursive: true });
  const before = page.viewportSize() ?? widths.desktop;
  for (const [label, size] of Object.entries(widths)) {
    await page.setViewportSize(size);
    await page.waitForTimeout(150);
    await page.screenshot({ path: join(dir, `${name}-${label}-${size.width}.png`), fullPage: true });
  }
  await page.setViewportSize(before);
}

/** A new page in its own context (its own cookies), with the console watched. */
export async function openPage(browser: Browser, baseURL: string) {
  const context: BrowserContext = await browser.newContext({ baseURL, viewport: widths.desktop });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const console = watchConsole(page);
  return { context, page, console };
}

export interface DropProxy {
  url: string;
  /** Cuts every open connection, as a network drop would; new ones still go through. */
  dropAll(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of the server, so a test can cause a real network
 * drop (the browser's connections reset) without touching the server.
 */
export async function startDropProxy(target: string): Promise<DropProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const proxy = createNetServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const address = proxy.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    dropAll() {
      for (const socket of sockets) socket.resetAndDestroy();
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => proxy.close(() => resolve()));
    },
  };
}
