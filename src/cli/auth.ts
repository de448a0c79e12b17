/** `cvm login`, `logout`, `whoami`, `tokens`. */

import type { Command } from "commander";
import { describeToken } from "../core/token-description.js";
import type { Token } from "../core/user.js";
import { inFlagTerms, numberFlag } from "./arguments.js";
import { clientFor, configuredClient, forgetConfig, writeConfig } from "./config.js";
import { age, examples, printFields, printJson, printTable } from "./output.js";
import { ask, confirm, interactive, secret } from "./prompt.js";

interface LoginOptions {
  email?: string;
  password?: string;
  passwordStdin?: boolean;
  name?: string;
  setupCode?: string;
}

/** The password: --password-stdin, CVM_PASSWORD, or a prompt. `--password` still works, shown in ps as it is. */
function password(options: LoginOptions, question: string): Promise<string> {
  if (options.password !== undefined) return Promise.resolve(options.password);
  return secret(question, { stdin: options.passwordStdin, env: "CVM_PASSWORD", flag: "--password-stdin" });
}

async function login(url: string, options: LoginOptions): Promise<void> {
  const client = clientFor(url);
  const { needsFirstAdmin } = await client.setupStatus();
  if (needsFirstAdmin) {
    const scripted = options.email !== undefined;
    if (!scripted) {
      if (interactive()) {
        process.stdout.write("This cvm server has no account yet.\n");
        if (!(await confirm("Create the first account, the site admin?"))) return;
      } else {
        process.stdout.write("This cvm server has no account yet; creating the first site admin.\n");
      }
    }
    const setupCode =
      options.setupCode || process.env.CVM_SETUP_CODE || (await ask("Setup code (the server prints it in its log): "));
    const email = options.email ?? (await ask("Email: "));
    const session = await client.createFirstAdmin({
      email,
      password: await password(options, "Password (at least 8 characters): "),
      name: options.name,
      setupCode,
    });
    writeConfig({ url, token: session.token });
    process.stdout.write(`Created the site admin ${session.user.email} and logged in to ${url}\n`);
    return;
  }
  const email = options.email ?? (await ask("Email: "));
  const session = await client.login({ email, password: await password(options, "Password: ") });
  writeConfig({ url, token: session.token });
  process.stdout.write(`Logged in to ${url} as ${session.user.email} (${session.user.role})\n`);
}

export function register(program: Command): void {
  program
    .command("login")
    .description("log in to a cvm server; on a fresh install, create its first account (the site admin)")
    .argument("<url>", "the server, such as http://127.0.0.1:7080")
    .option("--email <email>")
    .option("--password-stdin", "read the password from standard input (or set CVM_PASSWORD; else it is asked for)")
    .option("--password <password>", "the password on the command line, where ps shows it: prefer --password-stdin")
    .option("--name <name>", "your name, for the first account")
    .option(
      "--setup-code <code>",
      "a fresh install's one-time setup code, from the server's log (or set CVM_SETUP_CODE; else it is asked for)",
    )
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
    .description("the account this CLI is signed in as")
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

  const tokens = program
    .command("tokens")
    .description("your sessions and API tokens: what each is, where from, when last used; create and revoke")
    .addHelpText(
      "after",
      examples(
        "cvm tokens list",
        "cvm tokens create ci --ttl-days 90 > ci-token",
        "CVM_URL=https://cvm.example.com CVM_TOKEN=$(cat ci-token) cvm env list",
        "cvm tokens revoke tok_0123456789abcdef",
      ),
    );
  tokens
    .command("list", { isDefault: true })
    .description("your active sessions and API tokens (with --all, revoked and expired ones too)")
    .option("--all", "include revoked and expired tokens")
    .option("--json")
    .addHelpText("after", examples("cvm tokens list", "cvm tokens list --all --json"))
    .action(async (options: { all?: boolean; json?: boolean }) => {
      const { items } = await configuredClient().listTokens();
      const now = Date.now();
      const status = (t: Token) => (t.revokedAt ? "revoked" : Date.parse(t.expiresAt) <= now ? "expired" : "active");
      const shown = options.all ? items : items.filter((t) => status(t) === "active");
      if (options.json) return printJson(shown);
      printTable(
        ["ID", "WHAT", "FROM", "CREATED", "LAST USED", "EXPIRES", ...(options.all ? ["STATUS"] : [])],
        shown.map((t) => [
          t.id,
          describeToken(t),
          t.address ?? "",
          `${age(t.createdAt, now)} ago`,
          t.lastUsedAt ? `${age(t.lastUsedAt, now)} ago` : "never",
          t.expiresAt.slice(0, 10),
          ...(options.all ? [status(t)] : []),
        ]),
      );
      const hidden = items.length - shown.length;
      if (hidden > 0) process.stdout.write(`(${hidden} revoked or expired not shown: cvm tokens list --all)\n`);
    });
  tokens
    .command("create")
    .description("create an API token for a script; its secret is printed once, on stdout")
    .argument("<name>", "what the token is for, such as ci")
    .option(
      "--ttl-days <days>",
      "days until it expires (1-365, default 30)",
      numberFlag("--ttl-days", "days", { integer: true }),
    )
    .option("--json")
    .addHelpText("after", examples("cvm tokens create ci", "cvm tokens create nightly --ttl-days 365 --json"))
    .action(async (name: string, options: { ttlDays?: number; json?: boolean }) => {
      const created = await inFlagTerms({ name: "<name>", ttlDays: "--ttl-days" }, () =>
        configuredClient().createToken({ name, ttlDays: options.ttlDays }),
      );
      if (options.json) return printJson(created);
      process.stdout.write(`${created.secret}\n`);
      process.stderr.write(`Token ${created.token.id} expires ${created.token.expiresAt}; it is shown only once.\n`);
    });
  tokens
    .command("revoke")
    .description("revoke a session or API token: it is refused from the next request on")
    .argument("<id>", "the token's id, from cvm tokens list")
    .addHelpText("after", examples("cvm tokens revoke tok_0123456789abcdef"))
    .action(async (id: string) => {
      await configuredClient().revokeToken(id);
      process.stdout.write(`Revoked ${id}\n`);
    });
}
