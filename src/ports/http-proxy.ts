/**
 * HTTP through to a port inside an environment, over a connection the
 * provider dialed: one request and its response, bodies streamed both ways
 * (server-sent events and long downloads pass as they come), and WebSocket
 * upgrades passed through as raw bytes once the app answers (a WebSocket
 * ended by cvm still gets a close frame saying why). cvm's own
 * credentials never reach the app; the app's cookies never replace cvm's.
 */

import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { closeFrame, policyViolation, WebSocketFrames } from "./websocket-ending.js";

/** Headers that belong to one hop, never forwarded (RFC 9110 7.6.1). */
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** cvm's cookies: the dashboard session and port tickets. */
const cvmCookie = /^cvm_/;

export interface ProxyTarget {
  /** The app's connection, fresh from Provider.dial. */
  socket: Duplex;
  port: number;
  /** The path and query as the app should see them (the /@owner/NAME/ports/PORT prefix removed). */
  path: string;
  /** The prefix the app is served under, for X-Forwarded-Prefix; "" on a port's own host. */
  prefix: string;
  /** Headers added to the response (the sandbox for viewers who are not the owner). */
  responseHeaders?: Record<string, string>;
}

/** The request's headers for the app: hop-by-hop and cvm's credentials gone, where it came from added. */
export function forwardedHeaders(incoming: IncomingMessage, target: ProxyTarget, keepUpgrade = false) {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(incoming.headers)) {
    if (value === undefined) continue;
    if (hopByHop.has(name) && !(keepUpgrade && (name === "upgrade" || name === "connection"))) continue;
    if (name === "host") continue;
    if (name === "cookie") {
      const kept = String(value)
        .split(";")
        .map((part) => part.trim())
        .filter((part) => part && !cvmCookie.test(part.split("=")[0]));
      if (kept.length > 0) headers.cookie = kept.join("; ");
      continue;
    }
    if (name === "authorization" && /^Bearer\s+cvm_/i.test(String(value))) continue;
    headers[name] = value;
  }
  // Dev servers guard against DNS rebinding by the Host header; as far as the app knows, it is asked locally.
  headers.host = `localhost:${target.port}`;
  const encrypted = (incoming.socket as Socket & { encrypted?: boolean }).encrypted;
  headers["x-forwarded-host"] = incoming.headers.host ?? "";
  headers["x-forwarded-proto"] = String(incoming.headers["x-forwarded-proto"] ?? (encrypted ? "https" : "http"));
  headers["x-forwarded-for"] = [incoming.headers["x-forwarded-for"], incoming.socket.remoteAddress]
    .filter(Boolean)
    .join(", ");
  if (target.prefix) headers["x-forwarded-prefix"] = target.prefix;
  return headers;
}

/** The app's Set-Cookie headers, without any that would set one of cvm's cookies. */
function appCookies(value: string | string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const kept = (Array.isArray(value) ? value : [value]).filter((cookie) => !cvmCookie.test(cookie.trim()));
  return kept.length > 0 ? kept : undefined;
}

/** Makes a dialed stream usable where node's HTTP client expects a net.Socket. */
function asSocket(stream: Duplex): Socket {
  const socket = stream as Duplex & Partial<Socket>;
  socket.setNoDelay ??= () => socket as Socket;
  socket.setKeepAlive ??= () => socket as Socket;
  socket.setTimeout ??= () => socket as Socket;
  socket.ref ??= () => socket as Socket;
  socket.unref ??= () => socket as Socket;
  return socket as Socket;
}

/** One request through to the app and its response back, both streamed; resolves when the response is sent. */
export function proxyHttp(incoming: IncomingMessage, outgoing: ServerResponse, target: ProxyTarget): Promise<void> {
  return new Promise((resolve) => {
    const upstream = httpRequest({
      method: incoming.method,
      path: target.path,
      headers: forwardedHeaders(incoming, target),
      // Without an agent (not `agent: false`, which makes one), node uses this connection.
      createConnection: () => asSocket(target.socket),
    });
    const fail = (status: number, message: string) => {
      if (!outgoing.headersSent) {
        outgoing.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
        outgoing.end(`${message}\n`);
      } else {
        outgoing.destroy();
      }
      target.socket.destroy();
      resolve();
    };
    upstream.on("response", (response) => {
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(response.headers)) {
        if (value === undefined || hopByHop.has(name)) continue;
        if (name === "set-cookie") {
          const kept = appCookies(value);
          if (kept) headers[name] = kept;
          continue;
        }
        headers[name] = value;
      }
      outgoing.writeHead(response.statusCode ?? 502, response.statusMessage, {
        ...headers,
        ...target.responseHeaders,
      });
      // Streaming responses (server-sent events) go out as they arrive.
      outgoing.flushHeaders();
      response.pipe(outgoing);
      response.on("error", () => outgoing.destroy());
      outgoing.on("close", () => {
        target.socket.destroy();
        resolve();
      });
    });
    upstream.on("error", (error) => fail(502, `The app on port ${target.port} broke the connection: ${error.message}`));
    outgoing.on("close", () => {
      if (!outgoing.writableFinished) upstream.destroy();
    });
    incoming.pipe(upstream);
  });
}

/** An upgrade passed through; ending it tells a WebSocket's client why (close code 1008 and the reason). */
export interface PassedUpgrade {
  end(reason: string): void;
}

/** How long an ending WebSocket waits for the app to finish the frame it is sending. */
const finishFrameMs = 1_000;

/**
 * A WebSocket (any upgrade) through to the app: the request head goes to the
 * app as the client sent it (credentials removed), then bytes both ways.
 * The app's side is followed frame by frame (src/ports/websocket-ending.ts),
 * so that ending it can hand the client a close frame between two of the
 * app's; anything else is cut.
 */
export function proxyUpgrade(
  incoming: IncomingMessage,
  client: Duplex,
  head: Buffer,
  target: ProxyTarget,
): PassedUpgrade {
  const headers = forwardedHeaders(incoming, target, true);
  const lines = [`${incoming.method} ${target.path} HTTP/1.1`];
  for (const [name, value] of Object.entries(headers)) {
    for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`);
  }
  target.socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  if (head.length > 0) target.socket.write(head);
  const websocket = String(incoming.headers.upgrade ?? "").toLowerCase() === "websocket";
  const frames = new WebSocketFrames();
  let ending: string | undefined;
  const end = () => {
    client.destroy();
    target.socket.destroy();
  };
  const close = (reason: string) => {
    target.socket.destroy();
    client.end(closeFrame(policyViolation, reason));
    // The client answers with its own close frame and hangs up; one that does not is cut.
    setTimeout(() => client.destroy(), finishFrameMs).unref();
  };
  target.socket.on("data", (chunk: Buffer) => {
    if (ending === undefined) {
      frames.follow(chunk);
      if (!client.write(chunk)) target.socket.pause();
      return;
    }
    client.write(chunk.subarray(0, frames.follow(chunk, true)));
    if (frames.atBoundary) close(ending);
  });
  client.on("drain", () => target.socket.resume());
  client.pipe(target.socket);
  client.on("error", end);
  target.socket.on("error", end);
  client.on("close", end);
  target.socket.on("close", () => ending === undefined && end());
  return {
    end(reason) {
      if (ending !== undefined) return;
      // Another protocol upgraded to (h2c, say) gets no WebSocket frame: it is cut.
      if (!websocket || !frames.speaksWebSocket) return end();
      ending = reason;
      // Nothing more to the app; the client's own close frame is read and dropped.
      client.unpipe(target.socket);
      client.on("data", () => undefined);
      if (frames.atBoundary) return close(reason);
      target.socket.resume();
      setTimeout(end, finishFrameMs).unref();
    },
  };
}
