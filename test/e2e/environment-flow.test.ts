/**
 * A person's whole flow in the browser, against a real server and the real
 * engine: create an environment, watch the list and the build log move to
 * running without a refresh, open the terminal and run a command there, stop
 * it (the terminal closes cleanly), delete it. Once for a standard
 * environment, once for a CVM with `docker run` inside.
 */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { CvmClient } from "../../src/client/index.js";
import type { Environment } from "../../src/core/environment.js";
import { password, type TestServer } from "../harness/server.js";
import {
  type DropProxy,
  launchChromium,
  openPage,
  screenshots,
  startDashboardServer,
  startDropProxy,
  type watchConsole,
} from "./harness.js";

let server: TestServer;
let browser: Browser;
let admin: CvmClient;
/** The browser reaches the server through this, so a test can drop its connections. */
let proxy: DropProxy;
const created: string[] = [];
type ConsoleWatch = ReturnType<typeof watchConsole>;

before(async () => {
  server = await startDashboardServer();
  browser = await launchChromium();
  proxy = await startDropProxy(server.url);
  admin = new CvmClient({ baseUrl: server.url });
  admin.token = (
    await admin.createFirstAdmin({ email: "admin@example.com", password, setupCode: server.server.setupCode ?? "" })
  ).token;
});

after(async () => {
  for (const id of created) await admin.deleteEnvironment(id).catch(() => undefined);
  await browser?.close();
  await proxy?.close();
  await server?.close();
});

const uniqueName = (kind: string) => `e2e-web-${kind}-${randomBytes(3).toString("hex")}`;

async function signIn(page: Page) {
  await page.goto("/environments");
  await page.getByLabel("Email").fill("admin@example.com");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { level: 1, name: "Environments" }).waitFor();
}

/** The environment's state as the page header shows it. */
const headerState = (page: Page) => page.locator("h1 [data-state]").first();

async function waitForRunning(page: Page, environment: Environment, timeout: number) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const state = await headerState(page).getAttribute("data-state");
    if (state === "running") return;
    if (state === "failed" || Date.now() > deadline) {
      const now = await admin.environment(environment.id);
      const log = await page.getByTestId("build-log").textContent();
      assert.fail(`the page shows ${state} (server: ${now.state} ${now.stateReason ?? ""}); build log:\n${log}`);
    }
    await page.waitForTimeout(250);
  }
}

async function terminalLines(page: Page): Promise<string[]> {
  return (await page.locator(".xterm-rows > div").allInnerTexts()).map((line) => line.replace(/\u00a0/g, " ").trim());
}

/** Types a command into the terminal and waits for a line that is exactly `expected`. */
async function runInTerminal(page: Page, command: string, expected: string, timeout: number) {
  await page.getByTestId("terminal").click();
  await page.keyboard.type(command);
  await page.keyboard.press("Enter");
  const deadline = Date.now() + timeout;
  while (!(await terminalLines(page)).includes(expected)) {
    if (Date.now() > deadline) {
      assert.fail(
        `no line "${expected}" after ${command}; the terminal shows:\n${(await terminalLines(page)).join("\n")}`,
      );
    }
    await page.waitForTimeout(200);
  }
}

/** Types a command and returns the first new line matching `pattern` (lines already on screen do not count). */
async function capture(page: Page, command: string, pattern: RegExp, timeout = 20_000): Promise<RegExpMatchArray> {
  const before = (await terminalLines(page)).filter((line) => pattern.test(line)).length;
  await page.getByTestId("terminal").click();
  await page.keyboard.type(command);
  await page.keyboard.press("Enter");
  const deadline = Date.now() + timeout;
  for (;;) {
    const matching = (await terminalLines(page)).filter((line) => pattern.test(line));
    if (matching.length > before) return matching[before].match(pattern)!;
    if (Date.now() > deadline) assert.fail(`no line matching ${pattern} after ${command}`);
    await page.waitForTimeout(200);
  }
}

interface Flow {
  kind: "standard" | "cvm";
  image: string;
  command: string;
  runningWithin: number;
}

async function flow(
  context: BrowserContext,
  page: Page,
  console: ConsoleWatch,
  { kind, image, command, runningWithin }: Flow,
) {
  const name = uniqueName(kind);
  await signIn(page);
  if (kind === "cvm") await admin.updateInfrastructure({ cvmEnabled: true, force: true });

  // Create through the form.
  await page.getByRole("link", { name: "New environment" }).first().click();
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Image").fill(image);
  await page.getByLabel("CPUs").fill("1");
  await page.getByLabel("Memory (GiB)").fill("1");
  await page.getByLabel("Disk (GiB)").fill("5");
  if (kind === "cvm") await page.getByLabel("Container-based VM").check();
  await screenshots(page, `create-${kind}`);
  await page.getByRole("button", { name: "Create environment" }).click();
  await page.waitForURL((url) => /^\/environments\/(?!new$)[^/]+$/.test(url.pathname));
  const id = decodeURIComponent(new URL(page.url()).pathname.split("/").pop()!);
  created.push(id);
  const environment = await admin.environment(id);
  assert.equal(environment.cvm, kind === "cvm");

  // The build log streams while the state moves to running, with no refresh.
  await page.getByTestId("build-log").locator(".log-line").first().waitFor({ timeout: 60_000 });
  await screenshots(page, `environment-${kind}-building`);
  await waitForRunning(page, environment, runningWithin);
  assert.ok((await page.getByTestId("build-log").locator(".log-line").count()) > 1, "the log has lines");
  assert.ok((await page.getByTestId("timeline").locator("li").count()) >= 2, "the timeline shows the states passed");
  if (kind === "cvm") {
    await page.getByTestId("systemd-status").getByText("running", { exact: true }).waitFor({ timeout: 60_000 });
    await page.getByTestId("docker-status").getByText("answering", { exact: true }).waitFor({ timeout: 60_000 });
  } else {
    await page.getByTestId("systemd-status").locator(".badge").waitFor();
  }
  await screenshots(page, `environment-${kind}-running`);

  // The list shows it running too.
  await page.getByRole("link", { name: "Environments" }).first().click();
  const row = page.locator(`tr[data-environment="${name}"]`);
  await row.locator('[data-state="running"]').waitFor();
  assert.match((await row.textContent()) ?? "", kind === "cvm" ? /CVM/ : /standard/);
  await screenshots(page, `environments-${kind}`);

  // The terminal: a shell in the browser.
  await row.getByRole("link", { name, exact: true }).click();
  await page.getByRole("link", { name: "Open terminal" }).click();
  await page.getByTestId("terminal-status").getByText("Connected").waitFor({ timeout: 30_000 });
  await runInTerminal(page, command, "ok", kind === "cvm" ? 60_000 : 20_000);
  // UTF-8 both ways: bytes out of the environment, then typed in (readline needs a UTF-8 locale for that).
  await runInTerminal(page, "printf 'gr\\303\\274\\303\\237e \\342\\234\\223\\n'", "grüße ✓", 20_000);
  await page.keyboard.type("LANG=C.UTF-8 exec bash --norc\n");
  await runInTerminal(page, "echo 'ünï ✓'", "ünï ✓", 20_000);
  // Colors: an ANSI red comes out red.
  await runInTerminal(page, "printf '\\033[31mred-text\\033[0m\\n'", "red-text", 20_000);
  assert.ok(
    (await page.locator(".xterm-rows span.xterm-fg-1", { hasText: "red-text" }).count()) > 0,
    "red-text is drawn in the theme's red",
  );
  await screenshots(page, `terminal-${kind}`);

  // Resize: a narrower window gives the shell fewer columns.
  const wide = Number((await capture(page, "stty size", /^(\d+) (\d+)$/))[2]);
  await page.setViewportSize({ width: 700, height: 700 });
  await page.waitForTimeout(300);
  await page.keyboard.press("Enter");
  const narrow = Number((await capture(page, "stty size", /^(\d+) (\d+)$/))[2]);
  assert.ok(narrow < wide, `columns after narrowing the window: ${narrow}, before: ${wide}`);
  await page.setViewportSize({ width: 1280, height: 800 });

  // Paste from the clipboard through the Paste button.
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await page.evaluate(() => navigator.clipboard.writeText("echo pasted-$((6*7))"));
  await page.getByRole("button", { name: "Paste" }).click();
  // The paste lands on the command line first (reading the clipboard is asynchronous), then Enter runs it.
  const pasted = Date.now() + 20_000;
  while (!(await terminalLines(page)).some((line) => line.endsWith("echo pasted-$((6*7))"))) {
    if (Date.now() > pasted) assert.fail(`nothing pasted; terminal:\n${(await terminalLines(page)).join("\n")}`);
    await page.waitForTimeout(100);
  }
  await page.keyboard.press("Enter");
  await page.waitForFunction(() =>
    [...document.querySelectorAll(".xterm-rows > div")].some((row) => row.textContent?.trim() === "pasted-42"),
  );
  // Copy: select a word with a double click, then the Copy button puts it on the clipboard.
  const word = await page.locator(".xterm-rows > div", { hasText: /^pasted-42\s*$/ }).boundingBox();
  assert.ok(word, "the pasted-42 line is on screen");
  await page.mouse.dblclick(word.x + 12, word.y + word.height / 2);
  await page.getByRole("button", { name: "Copy" }).click();
  await page.waitForFunction(async () => (await navigator.clipboard.readText()) === "pasted-42");

  // A network drop: the terminal says so, reconnects by itself, and works again.
  // The browser reports the reset streams; those are the point here.
  console.expect(/ERR_CONNECTION_RESET|WebSocket connection to .* failed/);
  proxy.dropAll();
  await page
    .getByTestId("terminal-status")
    .getByText(/Connection lost|Reconnecting/)
    .waitFor({ timeout: 30_000 });
  await page.getByTestId("terminal-status").getByText("Connected").waitFor({ timeout: 30_000 });
  await runInTerminal(page, "echo again-$((20+22))", "again-42", 20_000);

  // Stopping the environment closes the terminal cleanly, saying why.
  await admin.stopEnvironment(id);
  await page
    .getByTestId("terminal-status")
    .getByText(/environment stopped|session closed|exited/)
    .waitFor({ timeout: 60_000 });
  await screenshots(page, `terminal-${kind}-stopped`);

  // Delete, with confirmation, from the environment page.
  await page.getByRole("link", { name: environment.name }).click();
  const inState = (state: string, timeout = 60_000) =>
    headerState(page)
      .and(page.locator(`[data-state="${state}"]`))
      .waitFor({ timeout });
  await inState("stopped");
  if (kind === "standard") {
    // The other actions from the page: start, rebuild (confirmed), stop (confirmed).
    await page.getByRole("button", { name: "Start" }).click();
    await inState("running", runningWithin);
    await page.getByRole("button", { name: "Rebuild" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Rebuild" }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    await headerState(page).and(page.locator('[data-state="running"]')).waitFor({ state: "detached" });
    await inState("running", runningWithin);
    assert.ok((await admin.builds(id)).items.length >= 2, "the rebuild made a new build");
    await page.getByRole("button", { name: "Stop" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Stop" }).click();
    await inState("stopped");
  }
  await page.getByRole("button", { name: "Delete" }).click();
  await screenshots(page, `environment-${kind}-delete-confirm`);
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await page.getByRole("heading", { level: 1, name: "Environments" }).waitFor();
  await page.locator(`tr[data-environment="${name}"]`).waitFor({ state: "detached", timeout: 60_000 });

  assert.deepEqual(console.errors, [], `console errors:\n${console.errors.join("\n")}`);
  await context.close();
}

test("the live list follows an environment created elsewhere, without a refresh", { timeout: 180_000 }, async (t) => {
  const image = process.env.CVM_TEST_IMAGE_PLAIN;
  if (!image) return t.skip("CVM_TEST_IMAGE_PLAIN is not set (run through npm test)");
  const { page, console, context } = await openPage(browser, proxy.url);
  await signIn(page);
  const name = uniqueName("live");
  const environment = await admin.createEnvironment({ name, image, cpu: 1, memoryGiB: 1, diskGiB: 5 });
  created.push(environment.id);
  const row = page.locator(`tr[data-environment="${name}"]`);
  await row.waitFor({ timeout: 15_000 });
  await row.locator('[data-state="running"]').waitFor({ timeout: 120_000 });
  await admin.deleteEnvironment(environment.id);
  await row.waitFor({ state: "detached", timeout: 60_000 });

  // Someone else's environment stays out of "Mine", and shows under "Everyone's".
  await admin.createUser({ email: "colleague@example.com", password, role: "member" });
  const colleague = new CvmClient({ baseUrl: server.url });
  colleague.token = (await colleague.login({ email: "colleague@example.com", password })).token;
  const theirs = await colleague.createEnvironment({
    name: uniqueName("theirs"),
    image,
    cpu: 1,
    memoryGiB: 1,
    diskGiB: 5,
  });
  created.push(theirs.id);
  const theirRow = page.locator(`tr[data-environment="${theirs.name}"]`);
  await page.waitForTimeout(2_000);
  assert.equal(await theirRow.count(), 0, "another user's environment is not in Mine");
  await page.getByLabel("Owner").selectOption("all");
  await theirRow.waitFor();
  assert.match((await theirRow.textContent()) ?? "", /colleague@example\.com/);
  await colleague.deleteEnvironment(theirs.id);
  assert.deepEqual(console.errors, []);
  await context.close();
});

test("a standard environment: create, log to running, terminal, start, rebuild, stop, delete", {
  timeout: 300_000,
}, async (t) => {
  const image = process.env.CVM_TEST_IMAGE_PLAIN;
  if (!image) return t.skip("CVM_TEST_IMAGE_PLAIN is not set (run through npm test)");
  const { page, console, context } = await openPage(browser, proxy.url);
  await flow(context, page, console, { kind: "standard", image, command: "echo ok", runningWithin: 120_000 });
});

test("a CVM: create, log to running, systemd and Docker, docker run in the terminal, stop, delete", {
  timeout: 480_000,
}, async (t) => {
  const image = process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER;
  if (!image) return t.skip("CVM_TEST_IMAGE_SYSTEMD_DOCKER is not set (run through npm test)");
  const { page, console, context } = await openPage(browser, proxy.url);
  await flow(context, page, console, {
    kind: "cvm",
    image,
    command: "docker run --rm cvm/hello echo ok",
    runningWithin: 300_000,
  });
});
