/** `cvm login`, `logout`, `whoami`, `tokens`. */

import type { Command } from "commander";
import { cliClient, configuredClient, forgetConfig, writeConfig } from "./config.js";
import { age, printFields, printJson, printTable } from "./output.js";
import { ask, confirm, interactive } from "./prompt.js";

interface LoginOptions {
  email?: string;
  password?: string;
  name?: string;
}

async function login(url: string, options: LoginOptions): Promise<void> {
  const client = cliClient(url);
  const { needsFirstAdmin } = await client.setupStatus();
  if (needsFirstAdmin) {
    const scripted = options.email !== undefined && options.password !== undefined;
    if (!scripted) {
      if (interactive()) {
        process.stdout.write("This cvm server has no account yet.\n");
        if (!(await confirm("Create the first account, the site admin?"))) return;
      } else {
        process.stdout.write("This cvm server has no account yet; creating the first site admin.\n");
      }
    }
    const email = options.email ?? (await ask("Email: "));
    const password = options.password ?? (await ask("Password (at least 8 characters): ", { secret: true }));
    const session = await client.createFirstAdmin({ email, password, name: options.name });
    writeConfig({ url, token: session.token });
    process.stdout.write(`Created the site admin ${session.user.email} and logged in to ${url}\n`);
    return;
  }
  const email = options.email ?? (await ask("Email: "));
  const password = options.password ?? (await ask("Password: ", { secret: true }));
  const session = await client.login({ email, password });
  writeConfig({ url, token: session.token });
  process.stdout.write(`Logged in to ${url} as ${session.user.email} (${session.user.role})\n`);
}

export function register(program: Command): void {
  program
    .command("login")
    .description("log in to a cvm server; on a fresh install, create its first account (the site admin)")
    .argument("<url>", "the server, such as http://127.0.0.1:7080")
    .option("--email <email>")
    .option("--password <password>")
    .option("--name <name>", "your name, for the first account")
    .action((url: string, options: LoginOptions) => login(url.replace(/\/$/, ""), options));

  program
    .command("logout")
    .description("end this session and forget the server")
    .action(async () => {
      await configuredClient()
        .logout()
        .catch(() => undefined);
      forgetConfig();
      process.stdout.write("Logged out\n");
    });

  program
    .command("whoami")
    .option("--json")
    .action(async (options: { json?: boolean }) => {
      const user = await configuredClient().whoami();
      if (options.json) return printJson(user);
      printFields([
        ["email", user.email],
        ["name", user.name],
        ["role", user.role],
      ]);
    });

  const tokens = program.command("tokens").description("API tokens for scripts");
  tokens
    .command("list", { isDefault: true })
    .option("--json")
    .action(async (options: { json?: boolean }) => {
      const { items } = await configuredClient().listTokens();
      if (options.json) return printJson(items);
      printTable(
        ["ID", "KIND", "NAME", "CREATED", "EXPIRES", "STATUS"],
        items.map((t) => [
          t.id,
          t.kind,
          t.name,
          age(t.createdAt),
          t.expiresAt.slice(0, 10),
          t.revokedAt ? "revoked" : Date.parse(t.expiresAt) < Date.now() ? "expired" : "active",
        ]),
      );
    });
  tokens
    .command("create")
    .argument("<name>")
    .option("--ttl-days <days>", "days until it expires (1-365)", Number)
    .option("--json")
    .action(async (name: string, options: { ttlDays?: number; json?: boolean }) => {
      const created = await configuredClient().createToken({ name, ttlDays: options.ttlDays });
      if (options.json) return printJson(created);
      process.stdout.write(`${created.secret}\n`);
      process.stderr.write(`Token ${created.token.id} expires ${created.token.expiresAt}; it is shown only once.\n`);
    });
  tokens
    .command("revoke")
    .argument("<id>")
    .action(async (id: string) => {
      await configuredClient().revokeToken(id);
      process.stdout.write(`Revoked ${id}\n`);
    });
}
