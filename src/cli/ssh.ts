/**
 * `cvm ssh NAME [-- CMD ARGS...]`: an interactive shell in an environment, or
 * one command whose output and exit code come back, through the server's
 * terminal WebSocket.
 */

import { createRequire } from "node:module";
import type { Command } from "commander";
import type WebSocket from "ws";
import type { TerminalClientMessage, TerminalServerMessage } from "../api/contract.js";
import { terminalStream } from "../api/contract.js";
import { CvmError } from "../core/errors.js";
import { startedIfStopped } from "./auto-start.js";
import { configuredClient } from "./config.js";
import { nextSteps, stateSentence } from "./next-steps.js";
import { sshStdio } from "./ssh-stdio.js";
import { refusal } from "./websocket.js";

function frame(stream: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([stream]), data]);
}

/** A refused terminal, told with what to run when the environment is not running; else the error as it was. */
async function explainRefusal(ref: string, error: unknown): Promise<unknown> {
  const environment = await configuredClient()
    .environment(ref)
    .catch(() => undefined);
  if (!environment || environment.state === "running") return error;
  return new CvmError("CONFLICT", stateSentence(environment), { detail: nextSteps(environment).join("\n  ") });
}

interface SshOptions {
  tty?: boolean;
  stdio?: boolean;
  user?: string;
}

/** The session; a stopped environment is started first, saying so on stderr. */
async function ssh(ref: string, command: string[], options: SshOptions): Promise<number> {
  return startedIfStopped(configuredClient(), ref, () => session(ref, command, options));
}

async function session(ref: string, command: string[], options: SshOptions): Promise<number> {
  if (options.user !== undefined && options.user !== "root") {
    throw new CvmError("BAD_REQUEST", `--user must be root (got "${options.user}"); without it, the image's own user`, {
      validations: [{ field: "user", detail: "must be root" }],
    });
  }
  const client = configuredClient();
  const interactiveShell = command.length === 0;
  const tty = options.tty ?? (interactiveShell && Boolean(process.stdin.isTTY));
  const url = client.terminalUrl(ref, {
    user: options.user === "root" ? "root" : undefined,
    command: interactiveShell ? undefined : command,
    tty,
    // A terminal that reports no size (0x0, as under script(1)) gets the server's default.
    cols: process.stdout.columns || undefined,
    rows: process.stdout.rows || undefined,
  });
  // ws is CommonJS: required, it loads in a third of the time its ES module wrapper takes.
  const Socket = createRequire(import.meta.url)("ws") as typeof WebSocket;
  const socket = new Socket(url, { headers: client.token ? { authorization: `Bearer ${client.token}` } : {} });
  const send = (message: TerminalClientMessage) => socket.send(JSON.stringify(message));
  const forwardStdin = tty || !process.stdin.isTTY;

  return await new Promise<number>((resolve, reject) => {
    let exitCode: number | undefined;
    socket.on("unexpected-response", (_request, response) => {
      refusal(response).then(reject);
    });
    socket.on("open", () => {
      if (tty && process.stdin.isTTY) process.stdin.setRawMode(true);
      if (forwardStdin) {
        process.stdin.on("data", (data: Buffer) => socket.send(frame(terminalStream.stdin, data)));
        process.stdin.on("end", () => send({ type: "eof" }));
        process.stdin.resume();
      }
      process.stdout.on("resize", () =>
        send({ type: "resize", cols: process.stdout.columns, rows: process.stdout.rows }),
      );
    });
    socket.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const target = data[0] === terminalStream.stderr ? process.stderr : process.stdout;
        target.write(data.subarray(1));
        return;
      }
      const message = JSON.parse(data.toString()) as TerminalServerMessage;
      if (message.type === "exit") exitCode = message.code;
      else process.stderr.write(`cvm: ${message.message}\n`);
    });
    socket.on("error", reject);
    socket.on("close", (code, reason) => {
      if (tty && process.stdin.isTTY) process.stdin.setRawMode(false);
      process.stdin.pause();
      if (exitCode !== undefined) resolve(exitCode);
      else if (code === 1000) resolve(0);
      else reject(new Error(`connection closed: ${reason.toString() || code}`));
    });
  });
}

export function register(program: Command): void {
  program
    .command("ssh")
    .description("a shell in an environment, or one command: cvm ssh NAME -- CMD ARGS...")
    .argument("<name>", "the environment: its name, or its id")
    .argument("[command...]", "a command to run instead of a shell, after --")
    .option("-t, --tty", "allocate a terminal even for a command")
    .option("-T, --no-tty", "never allocate a terminal")
    .option("--user <user>", "root; by default the image's own user, in its home")
    .option("--stdio", "carry an SSH connection on stdin and stdout (the ProxyCommand `cvm config-ssh` writes)")
    .passThroughOptions()
    .action(async (ref: string, command: string[], options: SshOptions) => {
      if (options.stdio) {
        process.exitCode = await sshStdio(ref);
        return;
      }
      // Passing options through keeps the `--` that separates cvm's flags from the command.
      process.exitCode = await ssh(ref, command[0] === "--" ? command.slice(1) : command, options).catch(
        async (error) => {
          throw await explainRefusal(ref, error);
        },
      );
      process.stdin.unref?.();
    });
}
