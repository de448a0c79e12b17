/**
 * Warm pools in a real browser against a real server with the docker
 * provider: a site admin sets a pool of the test image on Manage > Admin >
 * Infrastructure and watches it fill, a CVM created through the form claims
 * the pooled CVM (its build log says so, and it runs), the pool refills, and
 * the Remove button drains it.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import type { CvmClient } from "../../src/client/index.js";
import { password, type TestServer } from "../harness/server.js";
import { launchChromium, openPage, screenshots, startDashboardServer } from "./harness.js";

const image = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
let server: TestServer;
let browser: Browser;
let admin: CvmClient;

before(async () => {
  if (!image) return;
  server = await startDashboardServer();
  browser = await launchChromium();
  admin = await server.firstAdmin();
  await admin.updateInfrastructure({ cvmEnabled: true, runtime: "userns", force: true });
});

after(async () => {
  if (admin) {
    // A pool's CVMs outlive a server (the next one adopts them): this one's go with it.
    await admin.updateInfrastructure({ pools: [] }).catch(() => undefined);
    for (const environment of (await admin.listEnvironments({ owner: "all" }).catch(() => ({ items: [] }))).items) {
      await admin.deleteEnvironment(environment.id).catch(() => undefined);
    }
  }
  await browser?.close();
  await server?.close();
});

/** The pool's row, whose cells say how many are ready and being built. */
const poolRow = (page: Page) => page.locator(`tr[data-pool="${image}"]`);

test("an admin sets a warm pool, a CVM created through the form claims it, and Remove drains the pool", {
  skip: image ? false : "CVM_TEST_IMAGE_SYSTEMD_DOCKER is not set (run through npm test)",
  timeout: 600_000,
}, async () => {
  const { page, console, context } = await openPage(browser, server.url);
  try {
    await page.goto("/environments");
    await page.getByLabel("Email").fill("admin@example.com");
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: "Environments" }).waitFor();

    await page.getByRole("link", { name: "Infrastructure" }).click();
    const form = page.getByRole("form", { name: "Set a warm pool" });
    await form.getByLabel("Image").fill(image as string);
    await form.getByLabel("CPUs").fill("1");
    await form.getByLabel("Memory (GiB)").fill("1");
    await form.getByLabel("Disk (GiB)").fill("5");
    await form.getByLabel("CVMs to keep ready").fill("1");
    await form.getByRole("button", { name: "Save pool" }).click();
    await poolRow(page).waitFor();
    // The section polls while the pool fills: the row comes to say one ready, none being built.
    await poolRow(page).locator('td[data-label="Ready"]', { hasText: /^1$/ }).waitFor({ timeout: 300_000 });
    await screenshots(page, "warm-pools");
    const member = (await admin.pools()).members[0];
    assert.equal(member.state, "ready");

    await page.getByRole("link", { name: "Environments" }).first().click();
    await page.getByRole("link", { name: "New environment" }).first().click();
    await page.getByLabel("Name").fill("warm");
    await page.getByLabel("Image").fill(image as string);
    await page.getByLabel("CPUs").fill("1");
    await page.getByLabel("Memory (GiB)").fill("1");
    await page.getByLabel("Disk (GiB)").fill("5");
    await page.getByLabel("Container-based VM").check();
    await page.getByRole("button", { name: "Create environment" }).click();
    await page.waitForURL((url) => /^\/environments\/(?!new$)[^/]+$/.test(url.pathname));
    const id = decodeURIComponent(new URL(page.url()).pathname.split("/").pop() as string);
    assert.equal(id, member.id, "the environment took the pooled CVM's id");
    await page
      .getByTestId("build-log")
      .getByText(/pool: claiming a warm CVM/)
      .waitFor({ timeout: 60_000 });
    await page.locator('h1 [data-state="running"]').waitFor({ timeout: 60_000 });
    await screenshots(page, "warm-pool-claimed");

    await page.getByRole("link", { name: "Infrastructure" }).click();
    await poolRow(page)
      .getByRole("button", { name: `Remove the pool of ${image}` })
      .click();
    await poolRow(page).waitFor({ state: "detached" });
    assert.deepEqual((await admin.infrastructure()).pools, []);
    assert.equal((await admin.environment("warm")).state, "running", "the claimed CVM is no longer the pool's");
    assert.deepEqual(console.errors, [], `console errors:\n${console.errors.join("\n")}`);
  } finally {
    await context.close();
  }
});
