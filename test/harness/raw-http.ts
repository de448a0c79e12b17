/**
 * A request sent exactly as written, over HTTP or HTTPS: the Host, Origin and
 * body type an attacker chooses (fetch would set or refuse some of them), or
 * a server's own certificate to trust. The attack and transport tests use it.
 */

import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface RawRequest {
  method?: string;
  /** The path and query, such as /api/v1/setup. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** For HTTPS: the certificate to trust (a test's self-signed one). */
  ca?: Buffer;
}

/** Sends `options` to the server at `base` (its scheme, host and port). */
export function raw(base: string, options: RawRequest): Promise<RawAnswer> {
  const target = new URL(base);
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      {
        host: target.hostname,
        port: target.port,
        method: options.method ?? "GET",
        path: options.path,
        headers: { ...(options.body ? { "content-length": Buffer.byteLength(options.body) } : {}), ...options.headers },
        ca: options.ca,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}
