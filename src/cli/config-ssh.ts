/**
 * `cvm config-ssh`: makes `ssh NAME.cvm` (and scp, rsync, git, VS Code
 * Remote-SSH) work for each of the user's environments. It writes one block
 * between markers in ~/.ssh/config, replacing its own block on every run and
 * leaving the rest of the file as it was, and pins the server's host key in
 * a known-hosts file of its own beside it. The block's ProxyCommand is
 * `cvm ssh --stdio`, which tunnels over the server's authenticated WebSocket.
 */

import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { sshHostSuffix } from "../api/contract.js";
import { CvmError } from "../core/errors.js";
import { configuredClient } from "./config.js";

export const blockStart = "# ------------ cvm config-ssh: start (edits between these lines are replaced) ------------";
export const blockEnd = "# ------------ cvm config-ssh: end ------------";

/** The cvm launcher of this installation, which ssh runs as the ProxyCommand. */
const launcher = fileURLToPath(new URL("../../bin/cvm", import.meta.url));

/** A word for ssh_config: quoted when it has spaces or quotes. */
function word(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `"${text.replace(/(["\\])/g, "\\$1")}"`;
}

export interface SshBlockInput {
  serverUrl: string;
  environments: string[];
  knownHostsFile: string;
  cvm: string;
}

/**
 * The block: a Host line naming each environment (so editors list them),
 * then the options every `*.cvm` host shares. The SSH user `cvm` stands for
 * the image's own user; `ssh root@NAME.cvm` is root.
 */
export function sshBlock(input: SshBlockInput): string {
  const hosts = input.environments.map((name) => `${name}${sshHostSuffix}`);
  return [
    blockStart,
    `# Server: ${input.serverUrl}. Run \`cvm config-ssh\` again after creating or renaming environments.`,
    ...(hosts.length > 0 ? [`Host ${hosts.join(" ")}`] : []),
    `Host *${sshHostSuffix}`,
    `  ProxyCommand ${word(input.cvm)} ssh --stdio %n`,
    "  User cvm",
    `  UserKnownHostsFile ${word(input.knownHostsFile)}`,
    "  StrictHostKeyChecking yes",
    "  CheckHostIP no",
    blockEnd,
  ].join("\n");
}

/** `text` with its cvm block replaced by `block` (appended when absent; removed when `block` is empty). */
export function replaceBlock(text: string, block: string): string {
  const start = text.indexOf(blockStart);
  const end = text.indexOf(blockEnd);
  if (start >= 0 && (end < 0 || end < start)) {
    throw new CvmError("CONFLICT", "The SSH config has cvm's start marker without its end marker", {
      detail: `Fix or remove the line "${blockStart}" by hand, then run cvm config-ssh again`,
    });
  }
  if (start < 0) {
    if (!block) return text;
    const separator = text.length === 0 ? "" : text.endsWith("\n\n") ? "" : text.endsWith("\n") ? "\n" : "\n\n";
    return `${text}${separator}${block}\n`;
  }
  const before = text.slice(0, start);
  let after = text.slice(end + blockEnd.length);
  if (after.startsWith("\n")) after = after.slice(1);
  if (!block) return `${before.replace(/\n+$/, before.trim() ? "\n" : "")}${after}`;
  return `${before}${block}\n${after}`;
}

/** Writes `content` to `path` through a temporary file, keeping an existing file's mode (a new one is 0600). */
function writeAtomically(path: string, content: string): void {
  const mode = existsSync(path) ? statSync(path).mode & 0o777 : 0o600;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const partial = `${path}.cvm-${process.pid}`;
  writeFileSync(partial, content, { mode });
  chmodSync(partial, mode);
  renameSync(partial, path);
}

async function configSsh(options: { sshConfig?: string; remove?: boolean; dryRun?: boolean }): Promise<void> {
  const configPath = options.sshConfig ?? join(homedir(), ".ssh", "config");
  const knownHostsFile = join(dirname(configPath), "cvm_known_hosts");
  const current = existsSync(configPath) ? readFileSync(configPath, "utf8") : "";
  if (options.remove) {
    const next = replaceBlock(current, "");
    if (options.dryRun) process.stdout.write(next);
    else if (next !== current) writeAtomically(configPath, next);
    process.stderr.write(`removed cvm's block from ${configPath}\n`);
    return;
  }
  const client = configuredClient();
  const [{ items }, hostKey] = await Promise.all([client.listEnvironments(), client.sshHostKey()]);
  const names = items.map((e) => e.name).sort();
  const block = sshBlock({ serverUrl: client.baseUrl, environments: names, knownHostsFile, cvm: launcher });
  const next = replaceBlock(current, block);
  if (options.dryRun) {
    process.stdout.write(`${block}\n`);
    return;
  }
  writeAtomically(knownHostsFile, `*${sshHostSuffix} ${hostKey.publicKey}\n`);
  if (next !== current) writeAtomically(configPath, next);
  const list = names.length > 0 ? names.map((n) => `  ssh ${n}${sshHostSuffix}`).join("\n") : "  (no environments yet)";
  process.stdout.write(
    `${next === current ? "unchanged" : "updated"}: ${configPath}\n${list}\nAny environment works as NAME${sshHostSuffix}, also ones made later.\n`,
  );
}

export function register(program: Command): void {
  program
    .command("config-ssh")
    .description("make `ssh NAME.cvm` work for your environments (writes a block in ~/.ssh/config)")
    .option("--ssh-config <path>", "the SSH config file to write (default ~/.ssh/config)")
    .option("--remove", "remove cvm's block instead")
    .option("--dry-run", "print what would be written, change nothing")
    .action((options: { sshConfig?: string; remove?: boolean; dryRun?: boolean }) => configSsh(options));
}
