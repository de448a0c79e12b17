/**
 * A process in an environment's Pod, through the API server's exec
 * subresource (WebSocket), shaped as the Provider's ExecSession. A CVM's
 * session is framed (core/exec-frames.ts): the supervisor's `exec --framed`
 * gets input, resizes and end of input as frames on a plain stdin, and gives
 * the terminal to the CVM's own container, so the Pod's side never has one.
 */

import { PassThrough, Writable } from "node:stream";
import { Exec, type KubeConfig, type V1Status } from "@kubernetes/client-node";
import { encodeFrame } from "../../core/exec-frames.js";
import type { ExecSession } from "../../core/provider.js";

export interface ExecTarget {
  namespace: string;
  pod: string;
  container: string;
  command: string[];
  tty: boolean;
  cols?: number;
  rows?: number;
  /** stdin carries frames for `cvm supervisor exec --framed` (a CVM's session); the Pod gets no terminal. */
  framed?: boolean;
}

/** A stdout the client library reads the terminal's size from: columns, rows and a resize event. */
class TerminalOutput extends Writable {
  columns: number;
  rows: number;
  constructor(
    private readonly sink: (data: Uint8Array) => void,
    cols: number,
    rows: number,
  ) {
    super();
    this.columns = cols;
    this.rows = rows;
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.sink(chunk);
    done();
  }
  resize(cols: number, rows: number): void {
    this.columns = cols;
    this.rows = rows;
    this.emit("resize");
  }
}

/** The exit code in the Status the API server sends when the process ends. */
function exitCodeOf(status: V1Status): number {
  if (status.status === "Success") return 0;
  const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
  return cause?.message ? Number(cause.message) : 1;
}

export async function startExec(config: KubeConfig, target: ExecTarget): Promise<ExecSession> {
  const listeners: ((stream: "stdout" | "stderr", data: Uint8Array) => void)[] = [];
  const emit = (stream: "stdout" | "stderr") => (data: Uint8Array) => {
    for (const listener of listeners) listener(stream, data);
  };
  const stdout = new TerminalOutput(emit("stdout"), target.cols ?? 80, target.rows ?? 24);
  const stderr = new TerminalOutput(emit("stderr"), 80, 24);
  const stdin = new PassThrough();
  let settle: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => {
    settle = resolve;
  });
  const podTty = target.tty && !target.framed;
  const socket = await new Exec(config).exec(
    target.namespace,
    target.pod,
    target.container,
    target.command,
    stdout,
    podTty ? null : stderr,
    stdin,
    podTty,
    (status) => settle(exitCodeOf(status)),
  );
  socket.on("close", () => settle(255));
  const bytes = (data: Uint8Array | string) => (typeof data === "string" ? Buffer.from(data) : data);
  if (target.framed) {
    return {
      write: (data) => stdin.write(encodeFrame({ type: "input", data: bytes(data) })),
      end: () => stdin.write(encodeFrame({ type: "end" })),
      resize: async (cols, rows) => {
        stdin.write(encodeFrame({ type: "resize", cols, rows }));
      },
      onOutput: (listener) => listeners.push(listener),
      exited,
      kill: () => socket.close(),
    };
  }
  return {
    write: (data) => stdin.write(data),
    // A terminal's end of input is ^D: closing a tty's stdin hangs its process up,
    // before it has written anything if it has not started yet.
    end: () => (target.tty ? stdin.write(Buffer.from([4])) : stdin.end()),
    resize: async (cols, rows) => stdout.resize(cols, rows),
    onOutput: (listener) => listeners.push(listener),
    exited,
    kill: () => socket.close(),
  };
}
