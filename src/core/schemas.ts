/**
 * The domain's shapes, each written once as a zod schema; its TypeScript type
 * is inferred here and re-exported by the domain module it belongs to
 * (Environment from environment.ts, User from user.ts...). The API composes
 * these into its request and response schemas (src/api/schemas.ts), and the
 * OpenAPI document is generated from those. Enumerations are the const arrays
 * of the domain modules, so a new state or status is added in one place.
 *
 * They live apart from the rules (environment.ts, roles.ts, settings.ts)
 * because the dashboard imports the rules at runtime and must not ship zod:
 * schemas built at module level are not tree-shaken.
 */

import { z } from "zod";
import { buildOutcomes } from "./build.js";
import { dockerStatuses, environmentStates, isolationRuntimeNames, systemdStatuses } from "./environment.js";
import type { Observation } from "./provider.js";
import { supervisorReportStates } from "./provider.js";
import { roles } from "./roles.js";
import { networkReaches, runtimeChoices, supervisorPrivilegeModes } from "./settings.js";
import { tokenKinds } from "./user.js";
import { maxPoolCount, poolMemberStates } from "./warm-pool.js";

/** `true` only when A and B are the same type: `true satisfies Same<A, B>` binds a hand-written type to a schema. */
export type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

// Errors

export const validationSchema = z.object({ field: z.string(), detail: z.string() });
export type Validation = z.infer<typeof validationSchema>;

/** The body of every error the API answers with. */
export const errorBodySchema = z.object({
  message: z.string(),
  detail: z.string().optional(),
  validations: z.array(validationSchema).optional().describe("Each field that failed, so a form can mark it"),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

// Users and tokens

export const userSchema = z.object({
  id: z.string(),
  email: z.string(),
  name: z.string(),
  role: z.enum(roles),
  active: z.boolean(),
  createdAt: z.string(),
});
export type User = z.infer<typeof userSchema>;

/** A session or API token as stored: only the hash of its secret is kept. */
export const tokenSchema = z.object({
  id: z.string(),
  userId: z.string(),
  kind: z.enum(tokenKinds),
  name: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  lastUsedAt: z.string().optional(),
  revokedAt: z.string().optional(),
  userAgent: z
    .string()
    .optional()
    .describe("The User-Agent that created it: tells a CLI login from a browser's session"),
  address: z.string().optional().describe("The client address that created it"),
});
export type Token = z.infer<typeof tokenSchema>;

// Infrastructure settings

export const supervisorPrivilegesSchema = z.object({
  mode: z.enum(supervisorPrivilegeModes),
  capabilities: z.array(z.string().max(64)).max(64),
});
export type SupervisorPrivileges = z.infer<typeof supervisorPrivilegesSchema>;

const positive = z.number().positive();
const count = z.number().int().nonnegative();
export const environmentLimitsSchema = z.object({
  minCpu: positive,
  maxCpu: positive,
  minMemoryGiB: positive,
  maxMemoryGiB: positive,
  minDiskGiB: positive,
  maxDiskGiB: positive,
  pids: count.describe(
    "Processes and threads one environment may run at once; 0 sizes it to the node (an eighth of what the node allows, 1024 to 32768)",
  ),
});
export type EnvironmentLimits = z.infer<typeof environmentLimitsSchema>;

/** A warm pool an admin keeps: `count` booted CVMs of one image and size (core/warm-pool.ts). */
export const warmPoolSchema = z.object({
  image: z.string(),
  cpu: z.number().describe("CPUs each CVM holds while it waits; a claim may ask for fewer"),
  memoryGiB: z.number().describe("Memory each CVM holds while it waits; a claim may ask for less"),
  diskGiB: z.number().describe("The inner Docker's disk; a claim must ask for this size"),
  count: z.number().int().describe(`How many to keep ready, 0 to ${maxPoolCount}`),
});
export type WarmPool = z.infer<typeof warmPoolSchema>;

/** What each member may hold at once; 0 is no quota. Site admins and managers set them and are not held to them. */
export const userQuotasSchema = z.object({
  environments: count.describe("Environments a member may have, whatever their state"),
  runningCpu: z.number().nonnegative().describe("CPUs a member's environments may hold while they run or build"),
  runningMemoryGiB: z
    .number()
    .nonnegative()
    .describe("Memory a member's environments may hold while they run or build"),
  terminals: count.describe("Terminals a member may have open at once"),
});
export type UserQuotas = z.infer<typeof userQuotasSchema>;

export const environmentNetworkSchema = z.object({
  reach: z
    .enum(networkReaches)
    .describe("Which environments an environment may connect to: its own owner's, or every one of this installation"),
  allowedNetworks: z
    .array(z.string().max(64))
    .max(64)
    .describe(
      "Addresses or networks (a.b.c.d or a.b.c.d/n) on private ranges or of the node itself that environments may connect to, besides the internet",
    ),
});
export type EnvironmentNetwork = z.infer<typeof environmentNetworkSchema>;

export const infrastructureSettingsSchema = z.object({
  cvmEnabled: z.boolean(),
  runtime: z.enum(runtimeChoices),
  supervisorPrivileges: supervisorPrivilegesSchema,
  limits: environmentLimitsSchema,
  publicPorts: z.boolean().describe("Whether owners may share a port with everyone, signed in or not"),
  portsHost: z
    .string()
    .max(253)
    .describe(
      "A host whose subdomains reach this server (DNS *.HOST): port PORT of environment NAME of owner also opens at PORT--NAME--owner.HOST, an origin of its own; empty: none",
    ),
  idleStopMinutes: z
    .number()
    .describe(
      "Minutes without a terminal, SSH session or forwarded connection after which a running environment stops; 0: never",
    ),
  fuseDevice: z.boolean().describe("CVMs get /dev/fuse (sshfs, rclone, fuse-overlayfs, rootless Podman)"),
  tunDevice: z.boolean().describe("CVMs get /dev/net/tun (VPN clients, userspace networking)"),
  lxcfs: z
    .boolean()
    .describe(
      "CVMs see their own memory, CPUs and uptime in /proc (LXCFS); off, /proc is the kernel's whole, which rootless tools need to mount a proc of their own",
    ),
  pools: z.array(warmPoolSchema).describe("Warm pools: booted CVMs kept ready per image and size"),
  quotas: userQuotasSchema,
  network: environmentNetworkSchema,
});
export type InfrastructureSettings = z.infer<typeof infrastructureSettingsSchema>;

// Environments

export const stateChangeSchema = z.object({
  state: z.enum(environmentStates),
  at: z.string(),
  reason: z.string().optional(),
});
export type StateChange = z.infer<typeof stateChangeSchema>;

export const environmentSpecSchema = z.object({
  name: z.string(),
  image: z.string(),
  cvm: z.boolean(),
  cpu: z.number(),
  memoryGiB: z.number(),
  diskGiB: z.number(),
});
export type EnvironmentSpec = z.infer<typeof environmentSpecSchema>;

export const registryCredentialsSchema = z.strictObject({
  username: z.string().min(1).max(256),
  password: z.string().max(4096),
});
export type RegistryCredentials = z.infer<typeof registryCredentialsSchema>;

export const environmentSchema = environmentSpecSchema.extend({
  id: z.string(),
  ownerId: z.string(),
  ownerEmail: z.string(),
  state: z.enum(environmentStates),
  stateReason: z
    .string()
    .optional()
    .describe("Why the environment is in its state, when that needs saying (failed, vanished)"),
  runtime: z.enum(isolationRuntimeNames),
  systemd: z.enum(systemdStatuses),
  failedUnits: z.array(z.string()),
  docker: z.enum(dockerStatuses),
  buildId: z.string().optional().describe("The build whose log is current"),
  timeline: z.array(stateChangeSchema),
  createdAt: z.string(),
  updatedAt: z.string(),
  version: z.number().describe("Increases with every change; writes compare it so no change is lost"),
});
export type Environment = z.infer<typeof environmentSchema>;

// Warm pools

/** A booted CVM a provider holds for a pool; claimed, it becomes an environment with its id. */
export const poolMemberSchema = z.object({
  id: z.string().describe("The id the environment that claims it will have"),
  pool: z.string().describe("Its pool's image and size"),
  image: z.string(),
  cpu: z.number(),
  memoryGiB: z.number(),
  diskGiB: z.number(),
  runtimeSetting: z.enum(runtimeChoices).describe("The isolation runtime setting it was built under"),
  devices: z
    .object({ lxcfs: z.boolean(), fuseDevice: z.boolean(), tunDevice: z.boolean() })
    .optional()
    .describe(
      "The LXCFS, /dev/fuse and /dev/net/tun settings it was built under (absent: built before they were recorded)",
    ),
  imageVersion: z.string().optional().describe("The image's digest in its registry when it was built"),
  state: z.enum(poolMemberStates),
  reason: z.string().optional().describe("Why it failed"),
  createdAt: z.string(),
  readyAt: z.string().optional(),
});
export type PoolMember = z.infer<typeof poolMemberSchema>;

/**
 * An environment as lists show it: all but its timeline, which grows with
 * every start and stop and which only the environment's own page shows.
 */
export const environmentSummarySchema = environmentSchema
  .omit({ timeline: true })
  .describe("An environment without its timeline (GET /environments/:ref has it)");
export type EnvironmentSummary = z.infer<typeof environmentSummarySchema>;

// Builds

export const buildSchema = z.object({
  id: z.string(),
  environmentId: z.string(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  outcome: z.enum(buildOutcomes).optional(),
});
export type Build = z.infer<typeof buildSchema>;

export const buildLogLineSchema = z.object({
  buildId: z.string(),
  seq: z.number().describe("1, 2, 3... within a build; clients resume a stream after the last seq they saw"),
  at: z.string(),
  text: z.string(),
});
export type BuildLogLine = z.infer<typeof buildLogLineSchema>;

// The audit log

export const auditEntrySchema = z.object({
  id: z.string(),
  at: z.string(),
  actorId: z.string(),
  actorEmail: z.string(),
  action: z.string().describe("A dotted verb such as settings.update, user.set-role, environment.create"),
  target: z.string().describe("What was changed: settings/infrastructure, user/<id>, environment/<id>"),
  before: z.unknown(),
  after: z.unknown(),
});
export type AuditEntry = z.infer<typeof auditEntrySchema>;

/** One page of a long list. */
export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    nextCursor: z.string().optional().describe("Opaque; pass it back to get the next page. Absent on the last page."),
  });
export type Page<T> = z.output<ReturnType<typeof pageOf<z.ZodType<T>>>>;

// A supervisor's reports (Kubernetes)

/**
 * What a supervisor running away from the server (a Kubernetes Pod) tells it
 * about its environment's build, over the per-environment report channel.
 */
export const supervisorReportSchema = z.strictObject({
  lines: z.array(z.string().max(8192)).max(1000).optional().describe("Build-log lines, in order"),
  state: z.enum(supervisorReportStates).optional().describe("The build state the supervisor has reached"),
  reason: z.string().max(8192).optional().describe("Why, when the state is failed"),
  observation: z
    .strictObject({
      runtime: z.enum(isolationRuntimeNames).optional(),
      systemd: z.enum(systemdStatuses).optional(),
      failedUnits: z.array(z.string().max(256)).max(500).optional(),
      docker: z.enum(dockerStatuses).optional(),
    })
    .optional(),
});
export type SupervisorReport = z.infer<typeof supervisorReportSchema>;
true satisfies Same<
  NonNullable<SupervisorReport["observation"]>,
  Partial<Pick<Observation, "runtime" | "systemd" | "failedUnits" | "docker">>
>;
