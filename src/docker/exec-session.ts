/**
 * A process in a container, attached to its caller (a terminal, `cvm ssh`):
 * stdin, output (demultiplexed into stdout and stderr when there is no tty),
 * resize, and the exit code the engine recorded. One session for standard
 * environments on the host's engine and CVMs in cvm's own; what differs
 * between them is the user it runs as and whether the engine is on this host.
 */

import { type Duplex, PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import { loginShell } from "../core/login-shell.js";
import type { ExecOptions, ExecSession } from "../core/provider.js";

export interface ExecEngine {
  /** The user the process runs as (a CVM's root: "0"); the container's own user when absent. */
  user?: string;
  /** The engine runs on this host, so the pid it reports for the exec can be signalled from here. */
  engineIsLocal: boolean;
}

/**
 * The engine (API 1.41) cannot give an exec its terminal size at start: the
 * terminal is 0x0 until the first resize, which can only follow the start.
 * A program reading its size at once would see 0x0, so the command waits
 * (at most 2 s) for that first resize before it runs.
 */
export function sizedCommand(command: string[]): string[] {
  const wait =
    'i=0; while [ "$(stty size 2>/dev/null)" = "0 0" ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done; exec "$@"';
  return ["/bin/sh", "-c", wait, "sh", ...command];
}

type Stream = "stdout" | "stderr";
type Listener = (stream: Stream, data: Uint8Array) => void;

/** Output that arrives before anyone listens is kept for the first listener. */
class OutputFanout {
  private listeners: Listener[] = [];
  private pending: [Stream, Uint8Array][] = [];

  emit(stream: Stream, data: Uint8Array): void {
    if (this.listeners.length === 0) this.pending.push([stream, data]);
    for (const listener of this.listeners) listener(stream, data);
  }

  add(listener: Listener): void {
    this.listeners.push(listener);
    for (const [stream, data] of this.pending.splice(0)) listener(stream, data);
  }
}

async function exitCode(exec: Dockerode.Exec): Promise<number> {
  // The stream can end a moment before the engine records the exit.
  for (let i = 0; i < 300; i++) {
    const info = await exec.inspect().catch(() => undefined);
    if (!info) return -1;
    if (!info.Running) return info.ExitCode ?? -1;
    await sleep(10);
  }
  return -1;
}

export async function startExec(
  docker: Dockerode,
  container: Dockerode.Container,
  options: ExecOptions,
  engine: ExecEngine,
): Promise<ExecSession> {
  const env = { ...(options.tty ? { TERM: "xterm-256color" } : {}), ...options.env };
  const command = options.command.length > 0 ? options.command : loginShell;
  const sized = Boolean(options.tty && options.cols && options.rows);
  const exec = await container.exec({
    Cmd: sized ? sizedCommand(command) : command,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: options.tty,
    Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
    // Whom it runs as: asked for (the login account), else the engine's default for the container.
    ...(options.user || engine.user ? { User: options.user ?? engine.user } : {}),
    ...(options.cwd ? { WorkingDir: options.cwd } : {}),
  });
  const stream = (await exec.start({ hijack: true, stdin: true, Tty: options.tty })) as Duplex;
  const output = new OutputFanout();
  if (options.tty) {
    stream.on("data", (chunk: Buffer) => output.emit("stdout", chunk));
  } else {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stdout.on("data", (chunk: Buffer) => output.emit("stdout", chunk));
    stderr.on("data", (chunk: Buffer) => output.emit("stderr", chunk));
    docker.modem.demuxStream(stream, stdout, stderr);
  }
  const ended = new Promise<void>((resolve) => {
    stream.once("end", resolve);
    stream.once("close", resolve);
    stream.once("error", () => resolve());
  });
  const exited = ended.then(() => exitCode(exec));
  if (sized) await exec.resize({ h: options.rows, w: options.cols }).catch(() => undefined);
  return {
    write(data) {
      stream.write(data);
    },
    end() {
      // Half-close: the process reads end of input and may still write. A tty's
      // end of input is ^D in its line; closing it would make the engine drop the output.
      if (options.tty) stream.write("\x04");
      else stream.end();
    },
    async resize(cols, rows) {
      await exec.resize({ h: rows, w: cols });
    },
    onOutput(listener) {
      output.add(listener);
    },
    exited,
    kill() {
      // The engine has no call to signal an exec; a local engine's exec pid is a pid on this host.
      exec
        .inspect()
        .then((info) => {
          if (engine.engineIsLocal && info.Running && info.Pid > 0) process.kill(info.Pid, "SIGKILL");
        })
        .catch(() => undefined)
        .finally(() => stream.destroy());
    },
  };
}
