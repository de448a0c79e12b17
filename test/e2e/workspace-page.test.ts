/**
 * The environment page as a home, in a real browser against a real server:
 * the Connect panel (copy buttons, VS Code's Remote-SSH link to the user's
 * home), usage against the limits, the ports listening inside with their
 * share, the idle timer, every build's log; and the terminal of a stopped
 * environment starting it, saying so.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import type { CvmClient } from "../../src/client/index.js";
import type { Environment } from "../../src/core/environment.js";
import { password, type TestServer } from "../harness/server.js";
import { launchChromium, openPage, screenshots, startDashboardServer } from "./harness.js";

const image = process.env.CVM_TEST_IMAGE_SYSTEMD;
let server: TestServer;
let browser: Browser;
let admin: CvmClient;
let environment: Environment;

/** A server on 127.0.0.1:8080 inside (Perl is in every Debian image). */
const app = `nohup perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"127.0.0.1",LocalPort=>8080,Listen=>5,ReuseAddr=>1) or die; while($c=$s->accept){while(<$c>){last if /^\\r?$/} print $c "HTTP/1.1 200 OK\\r\\nConnection: close\\r\\n\\r\\nhello"; close $c}' >/dev/null 2>&1 </dev/null &`;

async function execIn(command: string): Promise<void> {
  const { WebSocket } = await import("ws");
  await new Promise<void>((resolve, reject) => {
    const socket = new WebSocket(admin.terminalUrl(environment.id, { command: ["sh", "-c", command], tty: false }), {
      headers: { authorization: `Bearer ${admin.token}` },
    });
    socket.on("close", () => resolve());
    socket.on("error", reject);
  });
}

async function follow(created: Environment): Promise<void> {
  const lines: string[] = [];
  for await (const item of admin.logs(created.id, { build: created.buildId, follow: true })) {
    if ("end" in item) {
      assert.equal(item.outcome, "running", `the build did not run:\n${lines.join("\n")}`);
      return;
    }
    lines.push(item.text);
  }
}

before(async () => {
  if (!image) return;
  server = await startDashboardServer();
  browser = await launchChromium();
  admin = await server.firstAdmin();
  environment = await admin.createEnvironment({ name: "home", image, cpu: 1, memoryGiB: 1 });
  await follow(environment);
  await execIn(app);
});

after(async () => {
  if (environment) await admin.deleteEnvironment(environment.id).catch(() => undefined);
  await browser?.close();
  await server?.close();
});

async function signIn(page: Page) {
  await page.goto("/environments");
  await page.getByLabel("Email").fill("admin@example.com");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { level: 1, name: "Environments" }).waitFor();
}

test("the environment page: connect, usage, ports, idle stop, every build's log; the terminal starts it", {
  skip: !image && "CVM_TEST_IMAGE_SYSTEMD is not set (run through npm test)",
  timeout: 300_000,
}, async () => {
  const { context, page, console } = await openPage(browser, server.url);
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await signIn(page);
  await page.goto(`/environments/${environment.id}`);

  const connect = page.getByTestId("connect");
  await connect.locator(".copy-line code", { hasText: "ssh home.cvm" }).first().waitFor();
  await connect.getByRole("button", { name: "Copy the ssh command" }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), "ssh home.cvm");
  await connect.getByText("You land as").waitFor();
  assert.equal(
    await page.getByTestId("vscode-link").getAttribute("href"),
    "vscode://vscode-remote/ssh-remote+home.cvm/home/dev",
  );
  assert.match(String(await connect.textContent()), /You land as dev in \/home\/dev/);

  const usage = page.getByTestId("usage");
  await usage.getByText(/of 1 cores/).waitFor({ timeout: 30_000 });
  assert.match(String(await usage.textContent()), /MiB of 1\.0 GiB/);

  const ports = page.getByTestId("ports");
  const row = ports.getByTestId("port-8080");
  await row.waitFor({ timeout: 30_000 });
  assert.match(String(await row.textContent()), /127\.0\.0\.1/);
  assert.equal(await row.getByRole("link", { name: "Open" }).getAttribute("href"), "/@admin/home/ports/8080/");
  await row.getByLabel("Who may open port 8080").selectOption("authenticated");
  for (let i = 0; i < 50; i++) {
    const share = (await admin.ports(environment.id)).items.find((p) => p.port === 8080)?.share;
    if (share === "authenticated") break;
    await page.waitForTimeout(100);
  }
  assert.equal((await admin.ports(environment.id)).items.find((p) => p.port === 8080)?.share, "authenticated");

  const idle = page.getByTestId("idle");
  assert.equal(await idle.getByTestId("idle-summary").textContent(), "Never stops by itself.");
  await idle.getByLabel("Idle time").selectOption("60");
  await idle.getByText(/unless used \(after 60 minutes/).waitFor();
  assert.equal((await admin.idle(environment.id)).minutes, 60);
  await screenshots(page, "environment-home");

  // Stopped, the terminal starts it and says so; then the shell is the user's.
  await admin.stopEnvironment(environment.id);
  for (let i = 0; i < 300 && (await admin.environment(environment.id)).state !== "stopped"; i++) {
    await page.waitForTimeout(100);
  }
  await page.goto(`/environments/${environment.id}/terminal`);
  // "starting it" while it starts, "started it" once the terminal opens: a start under a second may skip the first.
  await page
    .getByTestId("terminal-starting")
    .getByText(/home was stopped: start(ing|ed) it/)
    .waitFor();
  await page.getByTestId("terminal").waitFor({ timeout: 120_000 });
  await page.getByTestId("terminal-status").getByText("Connected").waitFor({ timeout: 60_000 });

  // Two builds now: the page lists both logs.
  await page.goto(`/environments/${environment.id}`);
  const picker = page.getByTestId("build-picker");
  await picker.waitFor();
  assert.equal(await picker.locator("option").count(), 3, "the latest, and each of the two builds");
  const first = await picker.locator("option").nth(2).getAttribute("value");
  await picker.selectOption(first as string);
  await page
    .getByTestId("build-log")
    .getByText(/created by admin@example.com/)
    .waitFor();

  // The site's side: public sharing and the default idle stop, on the Infrastructure page.
  await page.goto("/manage/infrastructure");
  await page.getByText("Owners may share a port publicly").click();
  await page.getByLabel("Idle stop (minutes without use; 0: never)").fill("45");
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByText("Settings saved.").waitFor();
  const settings = await admin.infrastructure();
  assert.deepEqual([settings.publicPorts, settings.idleStopMinutes], [false, 45]);
  assert.deepEqual(console.errors, []);
});
