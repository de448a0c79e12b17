/**
 * The CLI's upgraded connections to the server (the terminal, SSH, port
 * connections): opened with the configured token, and a refused upgrade read
 * as the API's error body, so the user sees the server's own message.
 */

import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { createRequire } from "node:module";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type WebSocket from "ws";
import type { CvmClient } from "../client/index.js";

/** The server refused to open the WebSocket; `status` says why (409: the environment is not running). */
export class Refused extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "Refused";
  }
}

/** The refusal of an upgrade, with the API's error message. */
export async function refusal(response: IncomingMessage): Promise<Refused> {
  return new Refused(await refusalMessage(response), response.statusCode ?? 0);
}

/** The message of a refused upgrade: the API's error body, else the status. */
export function refusalMessage(response: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = "";
    response.on("data", (chunk: Buffer) => {
      body += chunk.toString();
    });
    response.on("end", () => resolve(messageOf(body, response.statusCode ?? 0)));
  });
}

function messageOf(body: string, status: number): string {
  try {
    return (JSON.parse(body) as { message: string }).message;
  } catch {
    return body || `refused: HTTP ${status}`;
  }
}

/**
 * A stream of raw bytes over a WebSocket to `url`; resolves once open,
 * rejects with the server's refusal. The stream exists before the socket
 * opens, so bytes the server sends with its answer are never lost.
 */
export function openByteStream(client: CvmClient, url: string): Promise<{ socket: WebSocket; stream: Duplex }> {
  // Required, not imported: only the commands that open a stream load ws, and its CommonJS entry loads fastest.
  const ws = createRequire(import.meta.url)("ws") as typeof WebSocket & {
    createWebSocketStream: typeof import("ws").createWebSocketStream;
  };
  const socket = new ws(url, {
    headers: client.token ? { authorization: `Bearer ${client.token}` } : {},
    perMessageDeflate: false,
    maxPayload: 16 * 1024 * 1024,
  });
  const stream = ws.createWebSocketStream(socket);
  return new Promise((resolve, reject) => {
    let refused = false;
    socket.once("open", () => resolve({ socket, stream }));
    socket.once("unexpected-response", (_request, response) => {
      refused = true;
      refusal(response).then((error) => {
        reject(error);
        stream.destroy();
      });
    });
    stream.on("error", (error) => {
      if (!refused) reject(error);
    });
  });
}

/**
 * A raw TCP stream through the server: an HTTP upgrade to `protocol` (no
 * WebSocket framing); resolves with the socket once the server answers 101.
 */
export function openRawStream(client: CvmClient, url: string, protocol: string): Promise<Socket> {
  const target = new URL(url.replace(/^ws/, "http"));
  const request = (target.protocol === "https:" ? httpsRequest : httpRequest)(target, {
    headers: {
      connection: "Upgrade",
      upgrade: protocol,
      ...(client.token ? { authorization: `Bearer ${client.token}` } : {}),
    },
  });
  return new Promise((resolve, reject) => {
    request.once("upgrade", (_response, socket, head) => {
      if (head.length > 0) socket.unshift(head);
      socket.setNoDelay(true);
      resolve(socket);
    });
    request.once("response", (response) => refusal(response).then(reject));
    request.once("error", reject);
    request.end();
  });
}

/** What one read takes at most on the Node path of `cvm port-forward`: Node's own reads take 64 KiB. */
const readBytes = 1 << 20;

/**
 * openRawStream for a bulk transfer through Node (`cvm port-forward` where
 * cvm's bridge does not run): what the server sends is written into `into`
 * as it comes, read up to 1 MiB a call into one buffer (net's `onread`),
 * which halves the CLI's CPU per byte against Node's 64 KiB reads and
 * `pipe`. It speaks the upgrade itself, since Node's HTTP client needs the
 * socket's own reads; over https it is openRawStream piped into `into`.
 * Resolves with the socket to write to once the server answers 101; ends
 * `into` when the server ends.
 */
export function openRawStreamInto(client: CvmClient, url: string, protocol: string, into: Socket): Promise<Socket> {
  const target = new URL(url.replace(/^ws/, "http"));
  if (target.protocol !== "http:") {
    return openRawStream(client, url, protocol).then((socket) => {
      socket.pipe(into);
      return socket;
    });
  }
  return new Promise((resolve, reject) => {
    let head: Buffer | undefined = Buffer.alloc(0);
    let refused: { status: number; body: Buffer[] } | undefined;
    const forward = (chunk: Buffer) => {
      if (!into.write(Buffer.from(chunk))) {
        socket.pause();
        into.once("drain", () => socket.resume());
      }
    };
    const answered = (chunk: Buffer) => {
      const text = Buffer.concat([head as Buffer, chunk]);
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) {
        head = text;
        if (text.length > 64 * 1024) socket.destroy(new Error("the server's answer has no end to its head"));
        return;
      }
      head = undefined;
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text.toString("latin1", 0, end))?.[1] ?? 0);
      const rest = text.subarray(end + 4);
      if (status !== 101) {
        refused = { status, body: [Buffer.from(rest)] };
        return;
      }
      socket.setNoDelay(true);
      resolve(socket);
      if (rest.length > 0) forward(rest);
    };
    const socket = connect({
      host: target.hostname.replace(/^\[|\]$/g, ""),
      port: Number(target.port || 80),
      onread: {
        buffer: Buffer.allocUnsafe(readBytes),
        callback: (size: number, buffer: Uint8Array) => {
          const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, size);
          if (head) answered(chunk);
          else if (refused) refused.body.push(Buffer.from(chunk));
          else forward(chunk);
          return true;
        },
      },
    });
    socket.on("end", () => {
      if (refused)
        reject(new Refused(messageOf(Buffer.concat(refused.body).toString(), refused.status), refused.status));
      else if (head) reject(new Error("the server closed the connection before answering"));
      else into.end();
    });
    socket.on("error", reject);
    const authorization = client.token ? `authorization: Bearer ${client.token}\r\n` : "";
    socket.write(
      `GET ${target.pathname}${target.search} HTTP/1.1\r\nhost: ${target.host}\r\nconnection: Upgrade\r\nupgrade: ${protocol}\r\n${authorization}\r\n`,
    );
  });
}
