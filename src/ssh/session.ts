/**
 * One SSH session channel: what the client asks for before starting (a pty,
 * variables, agent forwarding), then a shell, a command or the sftp
 * subsystem, each one exec in the environment as the connection's account,
 * bridged to the channel: stdin, stdout and stderr apart (without a pty),
 * resizes, and the exit status, which `ssh` returns as its own.
 */

import type { PseudoTtyInfo, ServerChannel, Session } from "ssh2";
import type { ExecSession } from "../core/provider.js";
import { execAs } from "../server/login-accounts.js";
import type { ConnectionContext } from "./gateway.js";

/**
 * The environment's own sftp-server, wherever its distribution keeps it:
 * scp (SFTP since OpenSSH 9) and sftp then see exactly OpenSSH's server,
 * running as the account with its permissions.
 */
const sftpServers = [
  "/usr/lib/openssh/sftp-server",
  "/usr/libexec/openssh/sftp-server",
  "/usr/lib/ssh/sftp-server",
  "/usr/libexec/sftp-server",
  "/usr/lib/sftp-server",
];
const sftpCommand = [
  "/bin/sh",
  "-c",
  `for p in ${sftpServers.join(" ")}; do [ -x "$p" ] && exec "$p"; done; echo "cvm: this environment has no sftp-server (scp and sftp need one): install openssh-sftp-server, or use scp -O with scp installed" >&2; exit 127`,
];

/** Exit status when the command could not be started at all, as ssh uses for its own failures. */
const couldNotStart = 255;

const variableName = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function handleSession(session: Session, context: ConnectionContext): void {
  let pty: PseudoTtyInfo | undefined;
  let agentRequested = false;
  let exec: ExecSession | undefined;
  const env: Record<string, string> = {};

  session.on("pty", (accept, _reject, info) => {
    pty = info;
    accept?.();
  });
  session.on("window-change", (accept, _reject, info) => {
    if (pty) pty = { ...pty, cols: info.cols, rows: info.rows };
    exec?.resize(info.cols, info.rows).catch(() => undefined);
    accept?.();
  });
  session.on("env", (accept, reject, info) => {
    if (!variableName.test(info.key)) return reject?.();
    env[info.key] = info.val;
    accept?.();
  });
  session.on("auth-agent", (accept) => {
    agentRequested = true;
    accept?.();
  });
  session.on("signal", (accept, _reject, info) => {
    // An exec can only be ended, not signalled otherwise; a pty's ^C travels as a byte anyway.
    if (["KILL", "TERM", "HUP", "INT"].includes(info.name)) exec?.kill();
    accept?.();
  });

  const start = (channel: ServerChannel, command: string | string[] | undefined, usePty: boolean) => {
    run(channel, command, usePty).catch((error) => {
      const message = error instanceof Error ? error.message : String(error);
      context.log.info({ err: error }, "ssh session could not start");
      channel.stderr.write(`cvm: ${message}\r\n`);
      channel.exit(couldNotStart);
      channel.end();
    });
  };

  const run = async (channel: ServerChannel, command: string | string[] | undefined, usePty: boolean) => {
    const { environment, deps } = context;
    const account = await deps.loginAccounts.resolve(environment, context.request);
    const variables: Record<string, string> = { ...env };
    if (usePty && pty) variables.TERM = pty.term || "xterm-256color";
    if (agentRequested) variables.SSH_AUTH_SOCK = await context.agentSocket(account);
    const tty = usePty && pty !== undefined;
    exec = await deps.provider.exec(
      environment,
      execAs(account, command, { tty, cols: pty?.cols || 80, rows: pty?.rows || 24, env: variables }, environment.cpu),
    );
    bridgeExec(channel, exec);
    context.onClose(() => exec?.kill());
  };

  session.on("shell", (accept) => start(accept(), undefined, true));
  session.on("exec", (accept, _reject, info) => start(accept(), info.command, true));
  session.on("subsystem", (accept, reject, info) => {
    if (info.name !== "sftp") return reject?.();
    start(accept(), sftpCommand, false);
  });
}

/** The channel and the process, both ways; the exit status goes out after the last output. */
function bridgeExec(channel: ServerChannel, exec: ExecSession): void {
  let exited = false;
  exec.onOutput((stream, data) => {
    if (stream === "stderr") channel.stderr.write(data);
    else channel.write(data);
  });
  channel.on("data", (data: Buffer) => exec.write(data));
  channel.on("end", () => exec.end());
  channel.on("close", () => {
    if (!exited) exec.kill();
  });
  exec.exited.then(
    async (code) => {
      exited = true;
      // Output the engine delivered with the end arrives a turn later.
      await new Promise((resolve) => setImmediate(resolve));
      channel.exit(code < 0 ? couldNotStart : code);
      channel.end();
    },
    (error) => {
      exited = true;
      channel.stderr.write(`cvm: ${error instanceof Error ? error.message : String(error)}\r\n`);
      channel.exit(couldNotStart);
      channel.end();
    },
  );
}
