/**
 * The account a shell, command or SSH session runs as in one environment
 * (src/core/login-account.ts has the rule), read from the environment's own
 * /etc/passwd through the provider's exec and remembered briefly: a user
 * added inside counts within a minute, and a rebuild at once.
 */

import type { Environment } from "../core/environment.js";
import {
  type AccountRequest,
  type LoginAccount,
  loginAccount,
  loginEnvironment,
  loginShellOf,
  parsePasswd,
} from "../core/login-account.js";
import type { ExecOptions, Provider } from "../core/provider.js";
import { outputOf } from "../providers/read-inside.js";

const rememberMs = 60_000;

/** The image's configured user (what a plain exec runs as), the passwd file, and which homes exist. */
const probe = [
  "id -u",
  "echo ---",
  "cat /etc/passwd 2>/dev/null",
  "echo ---",
  'while IFS=: read -r _ _ _ _ _ home _; do [ -d "$home" ] && echo "$home"; done < /etc/passwd 2>/dev/null',
].join("; ");

interface Facts {
  configuredUid?: number;
  passwd: ReturnType<typeof parsePasswd>;
  homes: Set<string>;
}

/** An account and how to start a process as it. */
export interface ResolvedAccount extends LoginAccount {
  /** Where its processes start: its home, or / when the home does not exist. */
  cwd: string;
}

export class LoginAccounts {
  private readonly facts = new Map<string, { key: string; at: number; facts: Promise<Facts> }>();

  constructor(private readonly provider: Provider) {}

  private read(environment: Environment): Promise<Facts> {
    const key = `${environment.buildId ?? ""}`;
    const known = this.facts.get(environment.id);
    if (known && known.key === key && Date.now() - known.at < rememberMs) return known.facts;
    const facts = (async (): Promise<Facts> => {
      // A plain exec runs as the image's configured user on a plain container, as root in a CVM.
      const output = await outputOf((e, o) => this.provider.exec(e, o), environment, {
        command: ["/bin/sh", "-c", probe],
      });
      const [uid = "", passwd = "", homes = ""] = output.split("---\n");
      return {
        configuredUid: /^\d+$/.test(uid.trim()) ? Number(uid.trim()) : undefined,
        passwd: parsePasswd(passwd),
        homes: new Set(homes.split("\n").filter(Boolean)),
      };
    })();
    this.facts.set(environment.id, { key, at: Date.now(), facts });
    facts.catch(() => this.facts.delete(environment.id));
    return facts;
  }

  async resolve(environment: Environment, request: AccountRequest): Promise<ResolvedAccount> {
    const facts = await this.read(environment);
    const configured = facts.passwd.find((e) => e.uid === facts.configuredUid && e.uid !== 0);
    const account: LoginAccount =
      request === "default" && configured
        ? { ...configured, source: "image user" }
        : loginAccount(facts.passwd, request);
    return { ...account, cwd: facts.homes.has(account.home) ? account.home : "/" };
  }

  forget(environmentId: string): void {
    this.facts.delete(environmentId);
  }
}

/**
 * How to start a process as `account`: its login shell (`-l`) when there is
 * no command, the command given to that shell (`-c`, as sshd runs one) when
 * it is a string, or the command itself; in its home, with a login's variables
 * (sized to the environment's CPUs, `cpus`).
 */
export function execAs(
  account: ResolvedAccount,
  command: string | string[] | undefined,
  extra: Omit<ExecOptions, "command" | "user" | "cwd">,
  cpus?: number,
): ExecOptions {
  const shell = loginShellOf(account);
  return {
    ...extra,
    command: command === undefined ? [shell, "-l"] : typeof command === "string" ? [shell, "-c", command] : command,
    user: String(account.uid),
    cwd: account.cwd,
    env: { ...loginEnvironment(account, cpus), ...extra.env },
  };
}
