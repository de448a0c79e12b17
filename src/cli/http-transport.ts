/**
 * The CLI's requests over node:http, one connection each, closed with the
 * answer. With fetch, a command's process stayed alive for half a second to a
 * second after its last answer, until fetch's pool let the idle connection go;
 * a CLI makes a request or two and should exit the moment it is done.
 */

import { request as httpRequest, type IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import type { Transport, TransportResponse } from "../client/index.js";

async function readAll(stream: IncomingMessage): Promise<string> {
  let text = "";
  stream.setEncoding("utf8");
  for await (const chunk of stream) text += chunk;
  return text;
}

function answer(response: IncomingMessage): TransportResponse {
  const status = response.statusCode ?? 0;
  return {
    ok: status >= 200 && status < 300,
    status,
    statusText: response.statusMessage ?? "",
    text: () => readAll(response),
    json: async () => JSON.parse(await readAll(response)),
    // Made only when asked for (streamed answers): web streams cost a few milliseconds to load.
    get body() {
      return Readable.toWeb(response) as ReadableStream<Uint8Array>;
    },
  };
}

export const httpTransport: Transport = async (url, { method, headers, body, signal }) => {
  // TLS loads only for a server that speaks it.
  const send = url.startsWith("https:") ? (await import("node:https")).request : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = send(url, { method, headers, signal, agent: false }, (response) => resolve(answer(response)));
    outgoing.on("error", reject);
    outgoing.end(body);
  });
};
