/**
 * The API shapes of SSH and ports: zod schemas the routes validate and
 * document with, and the types the client and CLI use. Kept apart from the
 * routes so the dashboard's bundle imports shapes, never servers.
 */

import { z } from "zod";

/** GET /ssh/host-key */
export const sshHostKeySchema = z.object({
  publicKey: z.string().describe("The server's SSH host key as known_hosts holds it: `ssh-ed25519 AAAA...`"),
  hostSuffix: z.string().describe("What `cvm config-ssh` appends to an environment's name to make its SSH host name"),
});
export type SshHostKey = z.infer<typeof sshHostKeySchema>;

/** The host name suffix of environments in ~/.ssh/config: `ssh NAME.cvm`. */
export const sshHostSuffix = ".cvm";
