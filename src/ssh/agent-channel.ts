/**
 * Opening an `auth-agent@openssh.com` channel to the SSH client, which is
 * how OpenSSH's agent forwarding reaches the user's agent on the laptop.
 * ssh2's server opens forwarded-tcpip, x11 and streamlocal channels to its
 * client, and its protocol layer sends this one's open message
 * (`openssh_authAgent`, marked server-only), but its server has no method for
 * it; this does what the library's own openChannel does for the others,
 * through the connection's channel table. Pinned by ssh2's version in
 * package.json; test/ssh covers it with OpenSSH's `ssh -A`.
 */

import type { Connection, ServerChannel } from "ssh2";

/** ssh2's defaults for channels it opens (lib/Channel.js). */
const maxWindow = 2 * 1024 * 1024;
const packetSize = 32 * 1024;

interface ConnectionInternals {
  _chanMgr: { add(entry: unknown): number };
  _protocol: { openssh_authAgent(channel: number, window: number, packet: number): void };
}

export function openAgentChannel(connection: Connection): Promise<ServerChannel> {
  const internals = connection as unknown as ConnectionInternals;
  return new Promise((resolve, reject) => {
    const opened = Object.assign(
      (error: Error | undefined, channel: ServerChannel) => (error ? reject(error) : resolve(channel)),
      { type: "auth-agent@openssh.com" },
    );
    const local = internals._chanMgr.add(opened);
    if (local === -1) {
      reject(new Error("No free SSH channels for the agent"));
      return;
    }
    internals._protocol.openssh_authAgent(local, maxWindow, packetSize);
  });
}
