/** `cvm users create|list|set-role|deactivate` (site admins). */

import type { Command } from "commander";
import { type CvmClient, collectPages } from "../client/index.js";
import { CvmError } from "../core/errors.js";
import { isRole, roles } from "../core/roles.js";
import type { User } from "../core/user.js";
import { positiveWholeNumber } from "./arguments.js";
import { configuredClient } from "./config.js";
import { age, printJson, printTable } from "./output.js";
import { secret } from "./prompt.js";

/** An id as it is; an email (ids have no @) looked up by the server, without reading the whole list. */
async function userId(client: CvmClient, emailOrId: string): Promise<string> {
  if (!emailOrId.includes("@")) return emailOrId;
  const [user] = (await client.listUsers({ email: emailOrId, limit: 1 })).items;
  if (!user) throw new CvmError("NOT_FOUND", `No user ${emailOrId}`);
  return user.id;
}

function roleArgument(role: string): string {
  if (!isRole(role)) throw new CvmError("BAD_REQUEST", `role must be one of ${roles.join(", ")}`);
  return role;
}

interface CreateOptions {
  role: string;
  password?: string;
  passwordStdin?: boolean;
  name?: string;
  json?: boolean;
}

export function register(program: Command): void {
  const users = program.command("users").description("accounts and roles (site admins)");
  users
    .command("list", { isDefault: true })
    .description("accounts, oldest first")
    .option(
      "--limit <n>",
      "at most this many (default: all, read a page at a time)",
      positiveWholeNumber("--limit", "items"),
    )
    .option("--json")
    .action(async (options: { limit?: number; json?: boolean }) => {
      const client = configuredClient();
      const items = await collectPages((page) => client.listUsers(page), { max: options.limit });
      if (options.json) return printJson(items);
      printTable(
        ["ID", "EMAIL", "NAME", "ROLE", "ACTIVE", "AGE"],
        items.map((u) => [u.id, u.email, u.name, u.role, u.active ? "yes" : "no", age(u.createdAt)]),
      );
    });
  users
    .command("create")
    .argument("<email>")
    .option("--role <role>", `one of ${roles.join(", ")}`, "member")
    .option("--password-stdin", "read the password from standard input (or set CVM_PASSWORD; else it is asked for)")
    .option("--password <password>", "the password on the command line, where ps shows it: prefer --password-stdin")
    .option("--name <name>")
    .option("--json")
    .action(async (email: string, options: CreateOptions) => {
      const role = roleArgument(options.role);
      const password =
        options.password ??
        (await secret(`Password for ${email}: `, {
          stdin: options.passwordStdin,
          env: "CVM_PASSWORD",
          flag: "--password-stdin",
        }));
      const user = await configuredClient().createUser({
        email,
        password,
        role: role as User["role"],
        name: options.name,
      });
      if (options.json) return printJson(user);
      process.stdout.write(`Created ${user.email} (${user.role}) ${user.id}\n`);
    });
  users
    .command("set-role")
    .argument("<user>", "email or id")
    .argument("<role>", roles.join("|"))
    .option("--json")
    .action(async (who: string, role: string, options: { json?: boolean }) => {
      const client = configuredClient();
      const user = await client.updateUser(await userId(client, who), {
        role: roleArgument(role) as User["role"],
      });
      if (options.json) return printJson(user);
      process.stdout.write(`${user.email} is now ${user.role}\n`);
    });
  users
    .command("deactivate")
    .argument("<user>", "email or id")
    .action(async (who: string) => {
      const client = configuredClient();
      const user = await client.updateUser(await userId(client, who), { active: false });
      process.stdout.write(`${user.email} is deactivated\n`);
    });
}
