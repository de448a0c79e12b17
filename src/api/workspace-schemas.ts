/**
 * The API shapes of SSH and ports: zod schemas the routes validate and
 * document with, and the types the client and CLI use. Kept apart from the
 * routes so the dashboard's bundle imports shapes, never servers.
 */

import { z } from "zod";
import { portShares } from "../core/ports.js";

// The constants the CLI reads without loading zod live in contract.ts.
export { rawUpgrade, sshHostSuffix } from "./contract.js";

/** GET /ssh/host-key */
export const sshHostKeySchema = z.object({
  publicKey: z.string().describe("The server's SSH host key as known_hosts holds it: `ssh-ed25519 AAAA...`"),
  hostSuffix: z.string().describe("What `cvm config-ssh` appends to an environment's name to make its SSH host name"),
});
export type SshHostKey = z.infer<typeof sshHostKeySchema>;

/** One port of an environment: listening inside now, shared, or both. */
export const portInfoSchema = z.object({
  port: z.number().int(),
  listening: z.boolean().describe("Something listens on it inside now"),
  addresses: z.array(z.string()).describe("The addresses it is bound to inside (0.0.0.0 and :: mean all)"),
  share: z.enum(portShares).describe("private: the owner only; authenticated: every signed-in user; public: anyone"),
  path: z.string().describe("Where it opens through this server: /@owner/NAME/ports/PORT/"),
  hostUrl: z.string().optional().describe("Its own origin, where an admin set a wildcard host (portsHost)"),
});
export type PortInfo = z.infer<typeof portInfoSchema>;

/** GET /environments/:ref/ports */
export const portListSchema = z.object({
  items: z.array(portInfoSchema),
  publicPorts: z.boolean().describe("Whether this installation lets owners share ports publicly"),
});
export type PortList = z.infer<typeof portListSchema>;

/** PUT /environments/:ref/ports/:port */
export const setPortShareSchema = z.strictObject({ share: z.enum(portShares) });
export type SetPortShareRequest = z.infer<typeof setPortShareSchema>;
export const portShareSchema = z.object({ port: z.number().int(), share: z.enum(portShares) });

/** GET /environments/:ref/ports/:port/open */
export const portOpenQuerySchema = z.object({
  to: z.string().max(4096).optional().describe("The path to open on the port's host, starting with /"),
});

/** GET /environments/:ref/idle */
export const idleStatusSchema = z.object({
  minutes: z.number().int().describe("The idle time that applies: minutes without use before it stops; 0: never"),
  source: z.enum(["environment", "site"]).describe("Whether the environment sets its own or takes the site's"),
  lastActiveAt: z.string().optional().describe("When a terminal, SSH session or forwarded connection last used it"),
  stopsAt: z
    .string()
    .optional()
    .describe("When it stops unless someone uses it (a running environment with an idle time)"),
});
export type IdleStatus = z.infer<typeof idleStatusSchema>;

/** PUT /environments/:ref/idle: the environment's own idle time, or null for the site's. */
export const setIdleSchema = z.strictObject({
  minutes: z.number().int().min(0).max(43_200).nullable(),
});

/** GET /environments/:ref/usage */
export const usageSchema = z.object({
  cpu: z.object({
    cores: z.number().describe("CPU cores busy, measured over a quarter of a second"),
    limitCores: z.number().optional().describe("The cgroup's CPU quota, in cores"),
  }),
  memory: z.object({
    usedBytes: z.number().describe("Memory in use, less page cache the kernel can drop"),
    limitBytes: z.number().optional().describe("The cgroup's memory limit"),
  }),
  disks: z.array(
    z.object({
      path: z.string(),
      mount: z.string().describe("Where the filesystem holding the path is mounted"),
      usedBytes: z.number(),
      sizeBytes: z.number(),
    }),
  ),
  at: z.string(),
});
export type UsageReport = z.infer<typeof usageSchema>;

/** GET /environments/:ref/account */
export const accountSchema = z.object({
  name: z.string(),
  uid: z.number().int(),
  gid: z.number().int(),
  home: z.string(),
  shell: z.string(),
  source: z.enum(["image user", "asked for root", "no user in the image: root"]),
});
export type AccountInfo = z.infer<typeof accountSchema>;
