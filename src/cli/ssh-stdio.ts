/**
 * `cvm ssh --stdio NAME`: OpenSSH's ProxyCommand for `ssh NAME.cvm`. It
 * carries the SSH connection's bytes between ssh (stdin and stdout) and the
 * server's authenticated WebSocket; the SSH server end is in cvm server.
 * What goes wrong is said on stderr, which ssh shows.
 */

import { sshHostSuffix } from "../api/contract.js";
import { startedIfStopped } from "./auto-start.js";
import { configuredClient } from "./config.js";
import { openByteStream } from "./websocket.js";

/** `dev.cvm` (what ssh passes as %n) and `dev` both name environment dev. */
export function environmentOfHost(host: string): string {
  return host.endsWith(sshHostSuffix) ? host.slice(0, -sshHostSuffix.length) : host;
}

export async function sshStdio(host: string): Promise<number> {
  const client = configuredClient();
  let opened: Awaited<ReturnType<typeof openByteStream>>;
  try {
    const name = environmentOfHost(host);
    opened = await startedIfStopped(client, name, () => openByteStream(client, client.sshUrl(name)));
  } catch (error) {
    process.stderr.write(`cvm: ${(error as Error).message}\n`);
    return 255;
  }
  const { socket, stream } = opened;
  return new Promise((resolve) => {
    process.stdin.pipe(stream).on("error", () => undefined);
    stream.pipe(process.stdout);
    socket.once("close", (code, reason) => {
      if (code !== 1000 && code !== 1005 && reason.length > 0) process.stderr.write(`cvm: ${reason.toString()}\n`);
      resolve(0);
      process.stdin.unref?.();
    });
  });
}
