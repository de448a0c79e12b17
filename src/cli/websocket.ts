/**
 * The CLI's upgraded connections to the server (the terminal, SSH, port
 * connections): opened with the configured token, and a refused upgrade read
 * as the API's error body, so the user sees the server's own message.
 */

import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { createRequire } from "node:module";
import type { Socket } from "node:net";
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
    response.on("end", () => {
      try {
        resolve((JSON.parse(body) as { message: string }).message);
      } catch {
        resolve(body || `refused: HTTP ${response.statusCode}`);
      }
    });
  });
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
