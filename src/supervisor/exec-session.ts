/**
 * A process inside a CVM, attached to its caller (a terminal, `cvm ssh`):
 * stdin, output, resize, exit code. Root by default; with no command, the
 * user's login shell.
 */

import { type Duplex, PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import type { ExecOptions, ExecSession } from "../core/provider.js";

/** root's login shell from the image's passwd, else /bin/sh. */
export const loginShell = [
  "/bin/sh",
  "-c",
  'shell=$(getent passwd root 2>/dev/null | cut -d: -f7); [ -x "$shell" ] || shell=/bin/sh; cd ~ 2>/dev/null; exec "$shell" -l',
];

/**
 * The engine (API 1.41) cannot give an exec its terminal size at start: the
 * terminal is 0x0 until the first resize, which can only follow the start.
 * A program reading its size at once would see 0x0, so the command waits
 * (at most 2 s) for that first resize before it runs.
 */
function sized(command: string[]): string[] {
  const wait =
    'i=0; while [ "$(stty size 2>/dev/null)" = "0 0" ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done; exec "$@"';
  return ["/bin/sh", "-c", wait, "sh", ...command];
}

type Listener = (stream: "stdout" | "stderr", data: Uint8Array) => void;

export async function startExec(
  docker: Dockerode,
  container: Dockerode.Container,
  options: ExecOptions,
): Promise<ExecSession> {
  const env = Object.entries({ ...(options.tty ? { TERM: "xterm-256color" } : {}), ...options.env }).map(
    ([k, v]) => `${k}=${v}`,
  );
  const command = options.command.length > 0 ? options.command : loginShell;
  const exec = await container.exec({
    Cmd: options.tty && options.cols && options.rows ? sized(command) : command,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: options.tty,
    Env: env,
    User: options.user ?? "0",
    ...(options.cwd ? { WorkingDir: options.cwd } : {}),
  });
  const stream = (await exec.start({ hijack: true, stdin: true, Tty: options.tty })) as Duplex;
  const listeners: Listener[] = [];
  const pending: ["stdout" | "stderr", Uint8Array][] = [];
  const emit = (which: "stdout" | "stderr", data: Uint8Array) => {
    if (listeners.length === 0) pending.push([which, data]);
    for (const listener of listeners) listener(which, data);
  };
  if (options.tty) {
    stream.on("data", (chunk: Buffer) => emit("stdout", chunk));
  } else {
    const out = new PassThrough();
    const err = new PassThrough();
    out.on("data", (chunk: Buffer) => emit("stdout", chunk));
    err.on("data", (chunk: Buffer) => emit("stderr", chunk));
    docker.modem.demuxStream(stream, out, err);
  }
  const ended = new Promise<void>((resolve) => {
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.on("error", () => resolve());
  });
  const exited = ended.then(async () => {
    for (let i = 0; i < 200; i++) {
      const info = await exec.inspect().catch(() => undefined);
      if (!info) return -1;
      if (!info.Running) return info.ExitCode ?? -1;
      await sleep(10);
    }
    return -1;
  });
  if (options.tty && options.cols && options.rows) {
    await exec.resize({ h: options.rows, w: options.cols }).catch(() => undefined);
  }
  return {
    write(data) {
      stream.write(data);
    },
    end() {
      // Half-close: the process sees end of input and may still write. A tty's end of
      // input is ^D in its line; closing it would make the engine drop the output.
      if (options.tty) stream.write("\x04");
      else (stream as unknown as { end(): void }).end();
    },
    async resize(cols, rows) {
      await exec.resize({ h: rows, w: cols });
    },
    onOutput(listener) {
      listeners.push(listener);
      for (const [which, data] of pending.splice(0)) listener(which, data);
    },
    exited,
    kill() {
      exec
        .inspect()
        .then((info) => {
          if (info.Running && info.Pid > 0) process.kill(info.Pid, "SIGKILL");
        })
        .catch(() => undefined)
        .finally(() => stream.destroy());
    },
  };
}
