/**
 * The command line an exec on a Pod runs, carrying what the Kubernetes exec
 * API has no field for: the account, the working directory and the
 * variables (Docker's exec has User, WorkingDir and Env; the API server's
 * exec only a command). A CVM's exec goes through its supervisor, which
 * passes them to the engine that owns the CVM (`cvm supervisor exec --user
 * --cwd --env`); a standard environment's goes straight into its container,
 * where a small shell prologue changes directory, sets the variables and,
 * when the exec runs as root and another account is asked for, becomes it
 * with util-linux's `setpriv` (its groups from /etc/group, as Docker does).
 */

import type { ExecOptions } from "../../core/provider.js";

/** `cvm supervisor exec`'s arguments for `options` (the supervisor's engine does the rest). */
export function supervisorExecCommand(options: ExecOptions): string[] {
  const size = options.cols && options.rows ? ["--cols", String(options.cols), "--rows", String(options.rows)] : [];
  return [
    "cvm",
    "supervisor",
    "exec",
    "--framed",
    ...(options.tty ? ["--tty", ...size] : []),
    ...(options.user ? ["--user", options.user] : []),
    ...(options.cwd ? ["--cwd", options.cwd] : []),
    ...Object.entries(options.env ?? {}).flatMap(([key, value]) => ["--env", `${key}=${value}`]),
    "--",
    ...options.command,
  ];
}

/**
 * $1 the account's uid (or empty), $2 the directory (or empty), then `env`'s
 * arguments and the command. Exit 126 when the account cannot be taken.
 */
const prologue = [
  "u=$1 d=$2; shift 2",
  'if [ -n "$d" ]; then cd "$d" 2>/dev/null || cd /; fi',
  'if [ -z "$u" ] || [ "$(id -u)" = "$u" ]; then exec env -- "$@"; fi',
  'if [ "$(id -u)" != 0 ]; then echo "cvm: cannot run as uid $u: this container runs as uid $(id -u)" >&2; exit 126; fi',
  'command -v setpriv >/dev/null 2>&1 || { echo "cvm: cannot run as uid $u: the image has no setpriv (util-linux)" >&2; exit 126; }',
  'g=$(id -g "$u" 2>/dev/null) || { echo "cvm: no account with uid $u in the image" >&2; exit 126; }',
  'exec setpriv --reuid "$u" --regid "$g" --init-groups env -- "$@"',
].join("\n");

/** The command for a standard environment's container: the prologue, or the command itself when nothing is asked. */
export function containerExecCommand(options: ExecOptions): string[] {
  const env = { ...(options.tty ? { TERM: "xterm-256color" } : {}), ...options.env };
  if (!options.user && !options.cwd && Object.keys(env).length === 0) return options.command;
  return [
    "/bin/sh",
    "-c",
    prologue,
    "sh",
    options.user ?? "",
    options.cwd ?? "",
    ...Object.entries(env).map(([key, value]) => `${key}=${value}`),
    ...options.command,
  ];
}
