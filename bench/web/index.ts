/**
 * bench/web: how long the dashboard takes to put the environments list on
 * screen with 500 environments (its first page, 100 rows: the list is paged),
 * in Debian's Chromium against a real server,
 * as a ratio to the same page with an empty list, measured in the same run.
 * The page marks when the list's data arrived and when the rendered list was
 * painted (performance marks `cvm:environments:data` and
 * `cvm:environments:rendered`); each figure is the median of several loads,
 * the empty and the full list in turns.
 */

import { cpus, loadavg } from "node:os";
import type { Browser, Page } from "playwright-core";
import { CvmClient } from "../../src/client/index.js";
import type { EnvironmentState } from "../../src/core/environment.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { ensureDashboardBuilt, launchChromium, webDist } from "../../test/e2e/harness.js";
import { password, startTestServer } from "../../test/harness/server.js";
import type { BenchContext, BenchResult } from "../types.js";

const environmentCount = 500;
/** The rows the list shows before more are asked for (environmentPageSize in web/src/queries/environments.ts). */
const firstPage = 100;
const loads = 9;
const targetMs = 300;

interface Timing {
  /** Navigation start to the list painted. */
  load: number;
  /** List data in hand to the list painted: React's render, layout and paint. */
  render: number;
  /** List data in hand to the rows in the DOM: React's share of `render`. */
  react: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

interface SignedInPage {
  page: Page;
  expectRows: number;
  close(): Promise<void>;
}

/** A page of its own (own cookies), signed in through the form. */
async function signedIn(browser: Browser, url: string, email: string, expectRows: number): Promise<SignedInPage> {
  const context = await browser.newContext({ baseURL: url, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto("/environments");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { level: 1, name: "Environments" }).waitFor();
  return { page, expectRows, close: () => context.close() };
}

/** Reloads the page and reads its marks. */
async function load({ page, expectRows }: SignedInPage): Promise<Timing> {
  await page.reload();
  await page.waitForFunction(() => performance.getEntriesByName("cvm:environments:rendered").length > 0);
  const rows = await page.locator("tr[data-environment]").count();
  if (rows !== expectRows) throw new Error(`expected ${expectRows} rows on the page, found ${rows}`);
  // No named helpers inside: tsx would wrap them in a __name() the page does not have.
  return page.evaluate(() => {
    const rendered = performance.getEntriesByName("cvm:environments:rendered")[0].startTime;
    const data = performance.getEntriesByName("cvm:environments:data")[0].startTime;
    const committed = performance.getEntriesByName("cvm:environments:committed")[0].startTime;
    return { load: rendered, render: rendered - data, react: committed - data };
  });
}

function medians(timings: Timing[]): Timing {
  return {
    load: median(timings.map((t) => t.load)),
    render: median(timings.map((t) => t.render)),
    react: median(timings.map((t) => t.react)),
  };
}

/**
 * The empty and the full list, loaded in turns, so both see the same machine
 * (this one is shared, and its load moves by the second).
 */
async function measure(browser: Browser, url: string): Promise<{ empty: Timing; full: Timing }> {
  const emptyPage = await signedIn(browser, url, "empty@bench.test", 0);
  const fullPage = await signedIn(browser, url, "admin@bench.test", firstPage);
  try {
    const empty: Timing[] = [];
    const full: Timing[] = [];
    await load(fullPage); // warm the server's and the browser's caches
    for (let i = 0; i < loads; i++) {
      empty.push(await load(emptyPage));
      full.push(await load(fullPage));
    }
    return { empty: medians(empty), full: medians(full) };
  } finally {
    await emptyPage.close();
    await fullPage.close();
  }
}

export async function run(context?: BenchContext): Promise<BenchResult[]> {
  const log = context?.log ?? (() => undefined);
  await ensureDashboardBuilt();
  const served = await startTestServer({ webRoot: webDist, cvms: true });
  const { server } = served;
  let browser: Browser | undefined;
  try {
    const admin = new CvmClient({ baseUrl: server.url });
    const session = await admin.createFirstAdmin({
      email: "admin@bench.test",
      password,
      setupCode: server.setupCode ?? "",
    });
    admin.token = session.token;
    await admin.createUser({ email: "empty@bench.test", password, role: "member" });

    // 500 environments of the admin's, straight into the store: no workloads, only rows to render.
    const at = new Date(Date.now() - 3_600_000).toISOString();
    const states: EnvironmentState[] = ["stopped", "failed"];
    for (let i = 0; i < environmentCount; i++) {
      const environment = fixtures.environment({
        owner: session.user,
        name: `bench-env-${String(i).padStart(3, "0")}`,
        image: `127.0.0.1:5000/team/devbox-${i % 7}:latest`,
        cvm: i % 2 === 0,
        cpu: 2,
        memoryGiB: 4,
        diskGiB: 20,
        state: states[i % states.length],
        timeline: [{ state: "queued", at }],
        createdAt: at,
      });
      await server.store.environments.create(environment);
    }
    log(`${environmentCount} environments in the store; measuring ${loads} loads each`);

    browser = await launchChromium();
    const { empty, full } = await measure(browser, server.url);
    for (const [label, t] of [
      ["empty list", empty],
      [`${environmentCount} environments`, full],
    ] as const) {
      log(`${label}: load ${t.load.toFixed(0)} ms, render ${t.render.toFixed(1)} ms (React ${t.react.toFixed(1)} ms)`);
    }
    log(
      `load average while measuring: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")} on ${cpus().length} CPUs`,
    );

    return [
      {
        name: `environments list, ${environmentCount} environments (first page, ${firstPage} rows): data to painted list`,
        value: full.render,
        unit: "ms",
        baseline: `empty list: ${empty.render.toFixed(1)} ms`,
        ratio: full.render / Math.max(empty.render, 0.1),
        target: `< ${targetMs} ms`,
        pass: full.render < targetMs,
      },
      {
        name: `environments list, ${environmentCount} environments (first page): page load to painted list`,
        value: full.load,
        unit: "ms",
        baseline: `empty list: ${empty.load.toFixed(0)} ms`,
        ratio: full.load / Math.max(empty.load, 0.1),
      },
    ];
  } finally {
    await browser?.close();
    await served.close();
  }
}
