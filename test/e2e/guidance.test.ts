/**
 * The dashboard explains itself and never leaves a user stuck (issue 14), in
 * a real browser against a real server whose provider is the FAKE one, so
 * builds take the time and fail the way each test scripts: the audit log's
 * changes and target names, the Users page's confirmations and messages, the
 * terminal's Start, Reconnect and phone keys, the environment list at 1280 px
 * with row actions, the build log after a stop, a failed environment's page,
 * a build's steps and times, forms checked before they are sent, one phone
 * navigation on every page, and the Infrastructure page. Screenshots of each
 * at 1280 and 390 px.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import type { Environment, EnvironmentState } from "../../src/core/environment.js";
import { createFakeProvider } from "../../src/providers/fake/index.js";
import { password, type SignedIn, startTestServer, type TestServer } from "../harness/server.js";
import { ensureDashboardBuilt, launchChromium, openPage, screenshots, webDist, widths } from "./harness.js";

const fake = createFakeProvider({ script: { stepMs: 100 } });
let server: TestServer;
let browser: Browser;
let admin: SignedIn;

before(async () => {
  await ensureDashboardBuilt();
  server = await startTestServer({ webRoot: webDist, provider: fake });
  admin = await server.firstAdmin();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function signedIn() {
  const opened = await openPage(browser, server.url);
  await opened.page.goto("/");
  await opened.page.getByLabel("Email").fill(admin.user.email);
  await opened.page.getByLabel("Password").fill(password);
  await opened.page.getByRole("button", { name: "Sign in" }).click();
  await opened.page.getByRole("heading", { level: 1, name: "Environments" }).waitFor();
  return opened;
}

async function settled(ref: string, state: EnvironmentState): Promise<Environment> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const environment = await admin.environment(ref);
    if (environment.state === state) return environment;
    if (Date.now() > deadline) assert.fail(`${ref} is ${environment.state}, not ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Requests the page sends to an API path, from now on. */
function requestsTo(page: Page, method: string, path: string): string[] {
  const seen: string[] = [];
  page.on("request", (request) => {
    if (request.method() === method && new URL(request.url()).pathname === path) seen.push(request.url());
  });
  return seen;
}

/** A locator's text, as the DOM has it. */
const text = async (locator: Locator) => (await locator.textContent()) ?? "";

const headerState = (page: Page) => page.locator("h1 [data-state]").first();

test("audit log: Show lays a change out as fields before and after, full width; targets read by name", {
  timeout: 120_000,
}, async () => {
  const dev = await admin.createUser({ email: "dev@example.com", password, role: "member" });
  await admin.updateUser(dev.id, { role: "site-manager" });
  await admin.updateInfrastructure({ runtime: "userns" });
  const { page, context } = await signedIn();
  try {
    await page.goto("/manage/audit");
    const settingsRow = page.locator('tr[data-action="settings.update"]').first();
    await settingsRow.waitFor();
    assert.match(await text(settingsRow.locator("td[data-label='Target']")), /Infrastructure settings/);
    const roleRow = page.locator('tr[data-action="user.set-role"]').first();
    assert.match(await text(roleRow.locator("td[data-label='Target']")), /^dev@example\.com/);

    await settingsRow.getByRole("button", { name: "Show" }).click();
    const changes = page.locator("tr[data-changes-of]");
    await changes.waitFor();
    const runtime = changes.locator('tr[data-field="runtime"]');
    assert.equal(await text(runtime.locator(".change-before")), "auto");
    assert.equal(await text(runtime.locator(".change-after")), "userns");
    assert.equal(await changes.locator('tr[data-field="cvmEnabled"]').count(), 0, "unchanged fields are left out");
    for (const size of Object.values(widths)) {
      await page.setViewportSize(size);
      const table = await page.locator("table[aria-label='Audit log']").boundingBox();
      const cell = await changes.locator("td").first().boundingBox();
      const field = await runtime.locator("th").boundingBox();
      assert.ok(table && cell && field);
      assert.ok(cell.width > 0.85 * table.width, `the change spans the table at ${size.width} px`);
      assert.ok(field.height < 40, `"runtime" is one line at ${size.width} px, not a letter a line`);
    }
    await page.setViewportSize(widths.desktop);
    await screenshots(page, "audit-change");
  } finally {
    await context.close();
  }
});

test("users: a role change asks first and says what it did; a new user is confirmed; bad input is caught before sending", {
  timeout: 120_000,
}, async () => {
  const { page, console, context } = await signedIn();
  try {
    await page.goto("/manage/users");
    const posts = requestsTo(page, "POST", "/api/v1/users");
    await page.locator("#user-email").fill("not-an-email");
    await page.locator("#user-password").fill("short");
    await page.getByRole("button", { name: "Create user" }).click();
    const emailError = page.locator('[data-field-error="user-email"]');
    await emailError.waitFor();
    assert.match(await text(emailError), /^Must be an email address/);
    assert.match(await text(page.locator('[data-field-error="user-password"]')), /^Must be at least 8 characters/);
    assert.deepEqual(posts, [], "nothing was sent");

    await page.locator("#user-email").fill("new@example.com");
    await page.locator("#user-password").fill(password);
    await page.getByRole("button", { name: "Create user" }).click();
    await page.getByRole("status").getByText("Created new@example.com (Member).").waitFor();
    await screenshots(page, "users-created");

    const role = page.getByLabel("Role of new@example.com");
    await role.selectOption("site-manager");
    const dialog = page.getByRole("dialog");
    await dialog.getByRole("heading", { name: "Make new@example.com a Site manager?" }).waitFor();
    assert.match(await text(dialog), /change infrastructure settings and every environment/);
    const stillMember = (await admin.listUsers()).items.find((u) => u.email === "new@example.com");
    assert.equal(stillMember?.role, "member", "nothing changes before the confirmation");
    await screenshots(page, "users-role-confirm");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    assert.equal(await role.inputValue(), "member", "cancelled: the select shows the role as it is");

    await role.selectOption("site-manager");
    await dialog.getByRole("button", { name: "Change role" }).click();
    await page.getByRole("status").getByText("new@example.com is now a Site manager.").waitFor();
    const changed = (await admin.listUsers()).items.find((u) => u.email === "new@example.com");
    assert.equal(changed?.role, "site-manager");
    assert.deepEqual(console.errors, []);
  } finally {
    await context.close();
  }
});

test("terminal: a stopped environment is started, saying so; Reconnect after the shell exits; Ctrl and Esc on a phone", {
  timeout: 120_000,
}, async () => {
  const shell = await admin.createEnvironment({ name: "shell", image: "debian:12" });
  await settled(shell.id, "running");
  await admin.stopEnvironment(shell.id);
  await settled(shell.id, "stopped");
  const { page, context } = await signedIn();
  const sent: Buffer[] = [];
  page.on("websocket", (socket) =>
    socket.on("framesent", ({ payload }) => {
      if (typeof payload !== "string") sent.push(Buffer.from(payload));
    }),
  );
  try {
    await page.goto(`/environments/${shell.id}/terminal`);
    // Opening the terminal of a stopped environment starts it (issue 12) and says so; slow enough to be seen.
    fake.script("shell", { stepMs: 1500 });
    await page.getByTestId("terminal-starting").getByText("shell was stopped: starting it.").waitFor();
    await screenshots(page, "terminal-stopped-starting");
    const status = page.getByTestId("terminal-status");
    await status.getByText("Connected").waitFor();

    await page.getByTestId("terminal").click();
    await page.keyboard.type("exit\r");
    await status.getByText("The shell exited with code 0.").waitFor();
    await screenshots(page, "terminal-exited");
    await page.getByRole("button", { name: "Reconnect" }).click();
    await status.getByText("Connected").waitFor();

    const keys = page.getByRole("toolbar", { name: "Terminal keys" });
    assert.equal(await keys.isVisible(), false, "no extra keys beside a real keyboard");
    await page.setViewportSize(widths.phone);
    await keys.waitFor();
    const frames = () => sent.map((frame) => [...frame]);
    await keys.getByRole("button", { name: "Ctrl" }).click();
    assert.equal(await keys.getByRole("button", { name: "Ctrl" }).getAttribute("aria-pressed"), "true");
    await page.keyboard.type("c");
    await keys.getByRole("button", { name: "Esc" }).click();
    const deadline = Date.now() + 5_000;
    while (!frames().some((f) => f.join() === "0,27") && Date.now() < deadline) await page.waitForTimeout(50);
    assert.ok(
      frames().some((f) => f.join() === "0,3"),
      `Ctrl then c sends ^C: ${JSON.stringify(frames())}`,
    );
    assert.ok(
      frames().some((f) => f.join() === "0,27"),
      "Esc sends ESC",
    );
    await screenshots(page, "terminal-phone-keys");
  } finally {
    await context.close();
  }
});

test("the environment list at 1280 px cuts nothing short, and each row offers what its state allows", {
  timeout: 120_000,
}, async () => {
  const colleague = await server.userWithRole(admin, "member", "a-rather-long-colleague-name@example.com");
  const long = await admin.createEnvironment({
    name: "long-image",
    image: "registry.example.com/platform-team/devbox-with-a-long-name:2026.01.15",
    cpu: 1,
    memoryGiB: 1,
    diskGiB: 5,
  });
  const theirs = await colleague.createEnvironment({ name: "theirs-with-a-long-name", image: "debian:12" });
  await settled(long.id, "running");
  await settled(theirs.id, "running");
  const { page, context } = await signedIn();
  try {
    await page.goto("/environments?owner=all");
    const row = page.locator('tr[data-environment="long-image"]');
    await row.locator('[data-state="running"]').waitFor();
    const cut = await page.evaluate(() =>
      [...document.querySelectorAll("table[aria-label='Environments'] td, table[aria-label='Environments'] .badge")]
        .filter((el) => el.scrollWidth > el.clientWidth + 1)
        .map((el) => `${el.getAttribute("data-label") ?? el.className}: ${el.textContent}`),
    );
    assert.deepEqual(cut, [], "no cell or badge is cut at 1280 px");
    assert.match(await text(row), /1\sCPU · 1\sGiB · 5\sGiB\sdisk/);
    assert.match(await text(row), /standard/);
    assert.match(await text(page.locator('tr[data-environment="theirs-with-a-long-name"]')), /a-rather-long/);
    await screenshots(page, "environments-actions");

    await row.getByRole("button", { name: "Stop long-image" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Stop" }).click();
    await row.locator('[data-state="stopped"]').waitFor();
    await row.getByRole("button", { name: "Start long-image" }).click();
    await row.locator('[data-state="running"]').waitFor();
    await row.getByRole("link", { name: "Open the terminal of long-image" }).click();
    await page.getByTestId("terminal-status").getByText("Connected").waitFor();
  } finally {
    await context.close();
  }
});

test("the build log follows a stop: its lines arrive without a reload, and its status says where things are", {
  timeout: 120_000,
}, async () => {
  const box = await admin.createEnvironment({ name: "logbox", image: "debian:12" });
  await settled(box.id, "running");
  const { page, context } = await signedIn();
  try {
    await page.goto(`/environments/${box.id}`);
    const status = page.locator(".log-status");
    await status.getByText("Build finished: running").waitFor();
    await admin.stopEnvironment(box.id);
    const log = page.getByTestId("build-log");
    await log.getByText("state: running → stopping").waitFor();
    await log.getByText("state: stopping → stopped").waitFor();
    await status.getByText("Build finished: running; the environment is stopped now").waitFor();
    await screenshots(page, "environment-stopped-log");
  } finally {
    await context.close();
  }
});

test("a failed environment: its reason once, its buttons on one row, what Start will do, a rebuild from another image", {
  timeout: 120_000,
}, async () => {
  const reason = "manifest for broken:1 not found: the registry has no such tag";
  fake.script("broken:1", { failAt: "pulling", reason });
  const broken = await admin.createEnvironment({ name: "broken", image: "broken:1" });
  await settled(broken.id, "failed");
  const { page, context } = await signedIn();
  try {
    await page.goto(`/environments/${broken.id}`);
    await page.getByTestId("failure").getByText("The build failed at “Pull the image”").waitFor();
    const outsideLog = await page.evaluate(() => {
      const main = document.querySelector("main")?.cloneNode(true) as HTMLElement;
      main.querySelector("[data-testid='build-log']")?.remove();
      return main.textContent;
    });
    assert.equal(outsideLog.split(reason).length - 1, 1, `the reason is told once outside the log:\n${outsideLog}`);

    const title = await page.locator("h1").boundingBox();
    const buttons = await page
      .locator(".page-actions .button")
      .evaluateAll((els) => els.map((el) => el.getBoundingClientRect().top));
    assert.ok(title);
    assert.ok(
      buttons.every((top) => top < title.y + title.height),
      `every action on the title's row: ${buttons} vs ${title.y}`,
    );
    await screenshots(page, "environment-failed");

    await page.getByRole("button", { name: "Start again" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText(/fails the same way unless its cause has passed/).waitFor();
    await screenshots(page, "environment-failed-start-again");
    await dialog.getByRole("button", { name: "Rebuild from another image instead" }).click();
    const image = dialog.getByLabel("Image");
    assert.equal(await image.inputValue(), "broken:1");
    const rebuilds = requestsTo(page, "POST", `/api/v1/environments/${broken.id}/rebuild`);
    await image.fill("Not An Image");
    await dialog.getByRole("button", { name: "Rebuild" }).click();
    assert.match(await text(dialog.locator('[data-field-error="rebuild-image"]')), /^Has an invalid/);
    assert.deepEqual(rebuilds, [], "nothing was sent");
    await image.fill("debian:12");
    await dialog.getByRole("button", { name: "Rebuild" }).click();
    await headerState(page).and(page.locator('[data-state="running"]')).waitFor();
    assert.equal((await admin.environment(broken.id)).image, "debian:12");
  } finally {
    await context.close();
  }
});

test("while it builds the page lists the steps with their times; afterwards the timeline has durations", {
  timeout: 120_000,
}, async () => {
  fake.script("slow", { stepMs: 1500 });
  const { page, context } = await signedIn();
  try {
    const slow = await admin.createEnvironment({ name: "slow", image: "debian:12" });
    await page.goto(`/environments/${slow.id}`);
    const steps = page.getByTestId("build-steps");
    await steps.locator('[data-step="creating"].build-step-current').waitFor({ timeout: 10_000 });
    assert.match(await text(steps.locator('[data-step="pulling"].build-step-done')), /Pull the image[\s\S]*1\.\d s/);
    assert.match(await text(steps.locator('[data-step="creating"]')), /\d\.\d s/);
    assert.equal(await steps.locator('[data-step="starting"].build-step-pending').count(), 1);
    await screenshots(page, "environment-building-steps");
    await headerState(page).and(page.locator('[data-state="running"]')).waitFor();
    assert.equal(await steps.count(), 0, "the steps give way to the timeline once running");
    const pulling = page.getByTestId("timeline").locator("li").filter({ hasText: "pulling" });
    assert.match(await text(pulling.locator(".timeline-time-in")), /^1\.\d s$/);
  } finally {
    await context.close();
  }
});

test("image names wrap between their parts, field errors read as sentences, and an invalid form sends nothing", {
  timeout: 120_000,
}, async () => {
  const image = "registry.example.com/platform-team/devbox-with-a-long-name:2026.01.15";
  const wraps = await admin.createEnvironment({ name: "wraps", image });
  await settled(wraps.id, "running");
  const { page, console, context } = await signedIn();
  try {
    await page.setViewportSize(widths.phone);
    await page.goto(`/environments/${wraps.id}`);
    const name = page.locator(".facts .image-name");
    await name.waitFor();
    // Where each line of the rendered name begins: only after a separator or a hyphen.
    const lineStarts = await name.evaluate((element) => {
      const text = element.textContent ?? "";
      const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
      const tops: { index: number; top: number }[] = [];
      let offset = 0;
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (let i = 0; i < (node.textContent ?? "").length; i++) {
          const range = document.createRange();
          range.setStart(node, i);
          range.setEnd(node, i + 1);
          tops.push({ index: offset + i, top: Math.round(range.getBoundingClientRect().top) });
        }
        offset += (node.textContent ?? "").length;
      }
      return tops
        .filter((t, i) => i > 0 && t.top > tops[i - 1].top)
        .map((t) => ({ before: text[t.index - 1], at: text.slice(t.index, t.index + 8) }));
    });
    assert.ok(lineStarts.length > 0, "the name wraps at 390 px");
    for (const start of lineStarts) assert.match(start.before, /[/:@-]/, `a line begins mid-word at "${start.at}"`);

    await page.goto("/environments/new");
    const posts = requestsTo(page, "POST", "/api/v1/environments");
    await page.getByLabel("Name").fill("Bad_Name");
    await page.getByLabel("Image").fill("UPPER case");
    await page.getByLabel("CPUs").fill("0");
    await page.getByRole("button", { name: "Create environment" }).click();
    for (const id of ["env-name", "env-image", "env-cpu"]) {
      const error = page.locator(`[data-field-error="${id}"]`);
      await error.waitFor();
      assert.match(await text(error), /^[A-Z]/, `${id}'s error reads as a sentence`);
    }
    await screenshots(page, "create-checked-before-sending");
    assert.deepEqual(posts, [], "nothing was sent");
    assert.deepEqual(console.errors, [], "no 400 in the console");
  } finally {
    await context.close();
  }
});

test("on a phone the navigation is one row, the same on every page", { timeout: 120_000 }, async () => {
  const { page, context } = await signedIn();
  try {
    const [any] = (await admin.listEnvironments()).items;
    await page.setViewportSize(widths.phone);
    const layouts: string[] = [];
    for (const path of [
      "/environments",
      "/environments/new",
      `/environments/${any.id}`,
      "/manage/infrastructure",
      "/manage/users",
      "/manage/audit",
    ]) {
      await page.goto(path);
      await page.locator("h1").first().waitFor();
      const links = await page
        .getByRole("navigation", { name: "Main" })
        .getByRole("link")
        .evaluateAll((els) => els.map((el) => Math.round(el.getBoundingClientRect().top)));
      assert.equal(new Set(links).size, 1, `${path}: every link on one row (${links})`);
      const nav = await page.getByRole("navigation", { name: "Main" }).boundingBox();
      layouts.push(`${links[0]}/${Math.round(nav?.height ?? 0)}`);
    }
    assert.equal(new Set(layouts).size, 1, `the same navigation on every page: ${layouts}`);
  } finally {
    await context.close();
  }
});

/** Whether AppArmor is on in this kernel, as the check reads it. */
function apparmorOn(): boolean {
  try {
    return readFileSync("/sys/module/apparmor/parameters/enabled", "utf8").trim() === "Y";
  } catch {
    return false;
  }
}

test("Infrastructure: the menu's path, which setting is Kubernetes-only, not-applicable checks, folded evidence, the check running", {
  timeout: 180_000,
}, async () => {
  const { page, context } = await signedIn();
  try {
    await page.goto("/manage/infrastructure");
    const running = page.getByTestId("check-running");
    const badge = page.locator("#checks-title .badge");
    await badge.waitFor({ timeout: 60_000 });
    // The whole run takes about 70 ms here, too short to see which check runs; run again with
    // the browser's downloads slowed to a trickle, so each line of the progress arrives on its own.
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    const throttle = (downloadThroughput: number) =>
      cdp.send("Network.emulateNetworkConditions", {
        offline: false,
        latency: 0,
        downloadThroughput,
        uploadThroughput: -1,
      });
    await throttle(300);
    await page.getByRole("button", { name: "Run again" }).click();
    await running.getByText(/^Checking .+… \(\d+ done\)$/).waitFor({ timeout: 30_000 });
    await screenshots(page, "infrastructure-running");
    await throttle(-1);
    await badge.waitFor({ timeout: 90_000 });
    assert.equal(await running.count(), 0);

    assert.equal(await text(page.locator(".breadcrumb")), "Manage › Admin › Infrastructure");
    const menu = page.getByTestId("manage-menu");
    assert.equal(await text(menu.locator(".nav-subheading")), "Admin");
    assert.ok(await menu.locator(".nav-subheading").isVisible(), "the menu shows Admin above Infrastructure");
    assert.match(await text(page.locator("fieldset").filter({ hasText: "Supervisor privileges" })), /Kubernetes only/);
    if (!apparmorOn()) {
      assert.equal(
        await text(page.locator('tr[data-check="apparmor-profile"] td[data-label="Result"]')),
        "not applicable",
      );
    }
    const folded = page.locator('tr[data-check="cgroup-version"] details.evidence');
    assert.equal(await folded.getAttribute("open"), null, "long evidence starts folded");
    const cell = await page.locator('tr[data-check="cgroup-version"] td[data-label="Evidence"]').boundingBox();
    assert.ok(cell && cell.height < 80, `folded evidence is a line or two high, not ${cell?.height}px`);
    await screenshots(page, "infrastructure-checked");
    await folded.locator("summary").click();
    assert.equal(await folded.getAttribute("open"), "");
  } finally {
    await context.close();
  }
});
