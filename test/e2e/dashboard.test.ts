/**
 * The dashboard in a real browser against a real server: first run, the
 * admin's pages, field errors from the API's validations, a member's view
 * without Manage, logout and session expiry. Screenshots of every page.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { CvmClient } from "../../src/client/index.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { password, type TestServer } from "../harness/server.js";
import { launchChromium, openPage, screenshots, startDashboardServer, type watchConsole } from "./harness.js";

let server: TestServer;
let browser: Browser;
let admin: CvmClient;

before(async () => {
  server = await startDashboardServer();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const heading = (page: Page, name: string | RegExp) => page.getByRole("heading", { level: 1, name });

function assertNoConsoleErrors(console: ReturnType<typeof watchConsole>) {
  assert.deepEqual(console.errors, [], `console errors:\n${console.errors.join("\n")}`);
}

test("a fresh install: first admin, infrastructure, validations, users, audit, logout", {
  timeout: 180_000,
}, async () => {
  const { page, console, context } = await openPage(browser, server.url);
  try {
    await page.goto("/");
    await heading(page, "Welcome to cvm").waitFor();
    await screenshots(page, "first-run");
    // The code the server printed in its log, as the person installing it reads it there.
    await page.getByLabel("Setup code").fill(server.server.setupCode ?? "");
    await page.getByLabel("Your name").fill("Ada Admin");
    await page.getByLabel("Email").fill("admin@example.com");
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Create admin account" }).click();

    await heading(page, "Environments").waitFor();
    await page.getByRole("heading", { name: "No environments yet" }).waitFor();
    assert.equal(await page.getByTestId("manage-menu").count(), 1, "an admin sees Manage");
    await screenshots(page, "environments-empty");

    // The same account through the API, for checking what the browser did.
    admin = new CvmClient({ baseUrl: server.url });
    admin.token = (await admin.login({ email: "admin@example.com", password })).token;

    // Before CVMs are enabled, the create form has no CVM option.
    await page.getByRole("link", { name: "New environment" }).click();
    await heading(page, "New environment").waitFor();
    await page.getByLabel("Image").waitFor();
    await page.waitForTimeout(300);
    assert.equal(await page.getByLabel("Container-based VM").count(), 0, "no CVM option while CVMs are off");

    // Manage > Infrastructure: turn CVMs on (forced, with confirmation, if a check fails).
    await page.getByRole("link", { name: "Infrastructure" }).click();
    await heading(page, "Infrastructure").waitFor();
    await page.locator("#checks-title .badge, .feedback-error").first().waitFor({ timeout: 60_000 });
    await screenshots(page, "infrastructure");
    await page.getByRole("switch", { name: "Enable Container-Based Virtual Machines" }).check({ force: true });
    // An admin may keep a device out of CVMs: TUN off here, saved with the rest.
    await page.getByRole("switch", { name: "TUN (/dev/net/tun)" }).uncheck({ force: true });
    await page.getByRole("button", { name: "Save settings" }).click();
    const saved = page.getByText("Settings saved.");
    const force = page.getByRole("button", { name: "Enable anyway" });
    await saved.or(force).first().waitFor();
    if (await force.isVisible()) {
      console.expect(/status of (400|409|412|422)/);
      await screenshots(page, "infrastructure-force");
      await force.click();
      await saved.waitFor();
    }
    assert.equal((await admin.infrastructure()).cvmEnabled, true, "the toggle reached the server");
    assert.equal((await admin.infrastructure()).tunDevice, false, "the TUN switch reached the server");
    assert.equal((await admin.infrastructure()).fuseDevice, true, "the FUSE switch stayed on");

    // Create: the CVM option now shows, and the API's validations land on their fields.
    await page.getByRole("link", { name: "Environments" }).click();
    await page.getByRole("link", { name: "New environment" }).first().click();
    await page.getByLabel("Container-based VM").waitFor();
    await page.getByLabel("Name").fill("Not_A_Label");
    await page.getByLabel("Image").fill("UPPER/case image");
    await page.getByLabel("CPUs").fill("1000");
    console.expect(/status of 400/);
    await page.getByRole("button", { name: "Create environment" }).click();
    for (const [id, words] of [
      ["env-name", /DNS label/],
      ["env-image", /./],
      ["env-cpu", /at most/],
    ] as const) {
      const error = page.locator(`[data-field-error="${id}"]`);
      await error.waitFor();
      assert.match((await error.textContent()) ?? "", words, `error under ${id}`);
      assert.equal(await page.locator(`#${id}`).getAttribute("aria-invalid"), "true");
    }
    await screenshots(page, "create-validation-errors");

    // Users: create a member and a manager-to-be, change a role, deactivate one.
    await page.getByRole("link", { name: "Users" }).click();
    await heading(page, "Users").waitFor();
    const createUser = async (email: string) => {
      await page.locator("#user-email").fill(email);
      await page.locator("#user-password").fill(password);
      await page.getByRole("button", { name: "Create user" }).click();
      await page.locator(`tr[data-user="${email}"]`).waitFor();
    };
    await createUser("member@example.com");
    await createUser("manager@example.com");
    await createUser("leaver@example.com");
    await page.getByLabel("Role of manager@example.com").selectOption("site-manager");
    await page.getByRole("dialog").getByRole("button", { name: "Change role" }).click();
    await page.waitForFunction(
      () =>
        document.querySelector<HTMLSelectElement>("select[aria-label='Role of manager@example.com']")?.disabled ===
        false,
    );
    await page.locator('tr[data-user="leaver@example.com"]').getByRole("button", { name: "Deactivate" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Deactivate" }).click();
    await page.locator('tr[data-user="leaver@example.com"]').getByText("deactivated").waitFor();
    const users = (await admin.listUsers()).items;
    assert.equal(users.find((u) => u.email === "manager@example.com")?.role, "site-manager");
    assert.equal(users.find((u) => u.email === "leaver@example.com")?.active, false);
    await screenshots(page, "users");

    // Audit log: what just happened, filterable by action and user.
    await page.getByRole("link", { name: "Audit log" }).click();
    await heading(page, "Audit log").waitFor();
    await page.locator("tr[data-action]").first().waitFor();
    await screenshots(page, "audit");
    await page.getByLabel("Action").fill("settings.update");
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("tr[data-action]")];
      return rows.length > 0 && rows.every((row) => row.getAttribute("data-action") === "settings.update");
    });
    await page.getByLabel("Action").fill("");
    await page.getByLabel("User").selectOption({ label: "admin@example.com" });
    await page.locator("tr[data-action]").first().waitFor();
    const actors = await page.locator("tr[data-action] td[data-label='Who']").allInnerTexts();
    assert.ok(actors.length > 0 && actors.every((who) => who === "admin@example.com"), `actors: ${actors}`);

    // A time window with nothing in it, then pages of 25.
    await page.getByLabel("From").fill("2099-01-01T00:00");
    await page.getByText("Nothing recorded matches these filters.").waitFor();
    await page.getByLabel("From").fill("");
    await page.getByLabel("User").selectOption({ label: "Anyone" });
    for (let i = 0; i < 26; i++) await admin.updateInfrastructure({ runtime: i % 2 === 0 ? "userns" : "auto" });
    await page.getByRole("link", { name: "Infrastructure" }).click();
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.locator("tr[data-action]").nth(24).waitFor();
    const firstPage = await page.locator("tr[data-action] td[data-label='When']").allTextContents();
    assert.equal(firstPage.length, 25);
    await page.getByRole("button", { name: "Older" }).click();
    await page.getByText("Page 2").waitFor();
    await page.locator("tr[data-action]").first().waitFor();
    const rows = await page.locator("tr[data-action]").count();
    assert.ok(rows > 0 && rows <= 25, `page 2 has ${rows} rows`);
    await page.getByRole("button", { name: "Newer" }).click();
    await page.getByText("Page 1").waitFor();

    // Logout returns to the login form.
    await page.getByRole("button", { name: "Sign out" }).click();
    await heading(page, "Sign in").waitFor();
    await page.getByText("You signed out.").waitFor();
    await screenshots(page, "login");

    assertNoConsoleErrors(console);
  } finally {
    await context.close();
  }
});

test("a member has no Manage menu and cannot reach its pages; sessions end cleanly", { timeout: 120_000 }, async () => {
  assert.ok(admin, "needs the first test's admin");
  const { page, console, context } = await openPage(browser, server.url);
  try {
    await page.goto("/environments");
    await heading(page, "Sign in").waitFor();

    console.expect(/status of 401/);
    await page.getByLabel("Email").fill("member@example.com");
    await page.getByLabel("Password").fill("wrong password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();

    // By keyboard alone: the form's fields in order, Enter submits.
    await page.getByLabel("Password").fill("");
    await page.getByLabel("Email").focus();
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "login-password");
    await page.keyboard.type(password);
    await page.keyboard.press("Enter");
    await heading(page, "Environments").waitFor();
    assert.equal(await page.getByTestId("manage-menu").count(), 0, "a member sees no Manage menu");
    assert.equal(await page.getByRole("link", { name: "Infrastructure" }).count(), 0);
    await screenshots(page, "member-environments");

    for (const path of ["/manage/infrastructure", "/manage/users", "/manage/audit"]) {
      await page.goto(path);
      await heading(page, "Page not found").waitFor();
      assert.equal(await page.getByRole("switch").count(), 0, `${path} shows nothing of the page`);
    }
    await screenshots(page, "member-not-found");

    // CVMs are on (the first test), so a member's create form offers them too.
    await page.goto("/environments/new");
    await page.getByLabel("Container-based VM").waitFor();

    // The session ends under the page (the cookie expires): back to login, saying why.
    await context.clearCookies();
    await page.getByRole("link", { name: "Environments" }).click();
    await page.getByText("Your session expired, sign in again").waitFor();
    await heading(page, "Sign in").waitFor();
    await screenshots(page, "session-expired");

    assertNoConsoleErrors(console);
  } finally {
    await context.close();
  }
});

test("a site manager sees Manage, changes infrastructure, and reads users without changing them", {
  timeout: 120_000,
}, async () => {
  assert.ok(admin, "needs the first test's manager");
  const { page, console, context } = await openPage(browser, server.url);
  try {
    await page.goto("/");
    await page.getByLabel("Email").fill("manager@example.com");
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await heading(page, "Environments").waitFor();
    assert.equal(await page.getByTestId("manage-menu").count(), 1, "a manager sees Manage");

    await page.getByRole("link", { name: "Users" }).click();
    await page.locator('tr[data-user="admin@example.com"]').waitFor();
    assert.equal(await page.getByRole("button", { name: "Create user" }).count(), 0, "no user creation");
    assert.equal(await page.getByRole("combobox", { name: /^Role of/ }).count(), 0, "no role changes");
    assert.equal(await page.getByRole("button", { name: "Deactivate" }).count(), 0, "no deactivation");
    await screenshots(page, "manager-users");

    await page.getByRole("link", { name: "Infrastructure" }).click();
    await page.getByRole("radio", { name: /^userns/ }).check();
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.getByText("Settings saved.").waitFor();
    assert.equal((await admin.infrastructure()).runtime, "userns");
    assertNoConsoleErrors(console);
  } finally {
    await context.close();
  }
});

test("an admin's long list: the newest 100 first, more on request, new ones live at the top, filters asked of the server", {
  timeout: 120_000,
}, async () => {
  assert.ok(admin, "needs the first test's admin");
  const owner = await server.server.store.users.getByEmail("admin@example.com");
  assert.ok(owner);
  const t0 = Date.parse("2026-04-01T00:00:00.000Z");
  const seeded: string[] = [];
  for (let i = 0; i < 130; i++) {
    const environment = await server.server.store.environments.create(
      fixtures.environment({
        owner,
        name: `box-${i}`,
        state: i % 10 === 0 ? "failed" : "stopped",
        createdAt: new Date(t0 + i * 1000).toISOString(),
      }),
    );
    seeded.push(environment.id);
  }
  const { page, console, context } = await openPage(browser, server.url);
  const rows = page.locator("tr[data-environment]");
  try {
    await page.goto("/");
    await page.getByLabel("Email").fill("admin@example.com");
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator('tr[data-environment="box-129"]').waitFor();
    assert.equal(await rows.count(), 100, "one page of the newest");
    assert.equal(await page.locator('tr[data-environment="box-29"]').count(), 0);
    await screenshots(page, "environments-first-page");
    await page.getByRole("button", { name: "Show 100 more" }).click();
    await page.locator('tr[data-environment="box-0"]').waitFor();
    assert.equal(await rows.count(), 130);
    assert.equal(await page.getByRole("button", { name: "Show 100 more" }).count(), 0, "nothing more to show");

    // Created elsewhere (the API): it shows at the top without a reload.
    const fresh = await admin.createEnvironment({ name: "fresh", image: "127.0.0.1:9/nothing/here:1" });
    await page.locator('tr[data-environment="fresh"]').waitFor();
    assert.equal(await rows.first().getAttribute("data-environment"), "fresh");
    await admin.deleteEnvironment(fresh.id).catch(() => undefined);

    // Filters are the server's: 13 failed among 130, and names containing "x-12".
    await page.goto("/environments?state=failed");
    await page.waitForFunction(() => document.querySelectorAll("tr[data-environment]").length === 13);
    await page.goto("/environments?name=x-12");
    await page.waitForFunction(() => document.querySelectorAll("tr[data-environment]").length === 11);
    assertNoConsoleErrors(console);
  } finally {
    await context.close();
    for (const id of seeded) await server.server.store.environments.remove(id);
  }
});
