/**
 * The terminal's WebSocket protocol (src/api/contract.ts): binary frames
 * carry bytes behind a stream byte (0 stdin, 1 stdout, 2 stderr), text frames
 * carry JSON control messages. Reconnects with backoff after a network drop;
 * an `exit` or a deliberate close ends it for good.
 */

import type { TerminalClientMessage, TerminalServerMessage } from "../../../../src/api/contract.js";
import { terminalStream } from "../../../../src/api/contract.js";
import { client } from "../../api.js";

export type ConnectionStatus =
  | { kind: "connecting"; attempt: number }
  | { kind: "open" }
  | { kind: "reconnecting"; inSeconds: number }
  | { kind: "ended"; reason: string };

interface Handlers {
  output(bytes: Uint8Array): void;
  status(status: ConnectionStatus): void;
}

const encoder = new TextEncoder();

export class TerminalConnection {
  private socket?: WebSocket;
  private ended = false;
  private failures = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private size: { cols: number; rows: number };

  constructor(
    private readonly ref: string,
    size: { cols: number; rows: number },
    private readonly handlers: Handlers,
  ) {
    this.size = size;
    this.connect();
  }

  private connect() {
    this.handlers.status({ kind: "connecting", attempt: this.failures + 1 });
    const socket = new WebSocket(client.terminalUrl(this.ref, { cols: this.size.cols, rows: this.size.rows }));
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.failures = 0;
      this.handlers.status({ kind: "open" });
      this.control({ type: "resize", ...this.size });
    };
    socket.onmessage = (event) => {
      if (typeof event.data === "string") return this.onControl(event.data);
      const bytes = new Uint8Array(event.data as ArrayBuffer);
      if (bytes[0] === terminalStream.stdout || bytes[0] === terminalStream.stderr)
        this.handlers.output(bytes.subarray(1));
    };
    socket.onclose = (event) => {
      if (this.socket !== socket || this.ended) return;
      // The server closes normally when the shell is gone; anything else is a drop worth retrying.
      if (event.code === 1000 && opened) return this.end("The session closed.");
      this.failures++;
      const delay = Math.min(2 ** this.failures, 15);
      this.handlers.status({ kind: "reconnecting", inSeconds: delay });
      this.timer = setTimeout(() => this.connect(), delay * 1000);
    };
  }

  private onControl(text: string) {
    let message: TerminalServerMessage;
    try {
      message = JSON.parse(text) as TerminalServerMessage;
    } catch {
      return;
    }
    if (message.type === "exit") this.end(`The shell exited with code ${message.code}.`);
    if (message.type === "error") this.end(message.message);
  }

  private control(message: TerminalClientMessage) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Keyboard input or a paste, as typed. */
  input(data: string | Uint8Array) {
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    const payload = typeof data === "string" ? encoder.encode(data) : data;
    const frame = new Uint8Array(payload.length + 1);
    frame[0] = terminalStream.stdin;
    frame.set(payload, 1);
    this.socket.send(frame);
  }

  resize(cols: number, rows: number) {
    this.size = { cols, rows };
    this.control({ type: "resize", cols, rows });
  }

  /** Reconnect now instead of waiting out the backoff. */
  retryNow() {
    if (this.ended || this.socket?.readyState === WebSocket.OPEN) return;
    clearTimeout(this.timer);
    this.connect();
  }

  /** Ends the session for good, saying why. */
  end(reason: string) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    const socket = this.socket;
    if (socket && socket.readyState <= WebSocket.OPEN) {
      if (socket.readyState === WebSocket.OPEN) this.control({ type: "eof" });
      socket.close(1000, "closed by the dashboard");
    }
    this.handlers.status({ kind: "ended", reason });
  }
}
