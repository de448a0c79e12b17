/**
 * The zod schemas of the API: request shapes the routes validate, and response
 * shapes that only document (the OpenAPI document is generated from both).
 * Semantic rules (DNS-label names, image references, size limits, emails) live
 * in src/core and are attached here, so every route reports them the same way.
 */

import { z } from "zod";
import { environmentStates } from "../core/environment.js";
import { roles } from "../core/roles.js";
import { defaultSettings, runtimeChoices } from "../core/settings.js";
import { emailProblem, passwordProblem } from "../core/user.js";

/** Turns a core problem function (`undefined` when fine) into a zod check. */
function rule(problem: (value: unknown) => string | undefined) {
  return (value: unknown, ctx: z.RefinementCtx) => {
    const detail = problem(value);
    if (detail) ctx.addIssue({ code: "custom", message: detail });
  };
}

const flag = z.enum(["0", "1", "true", "false"]);
export const isSet = (value: string | undefined) => value === "1" || value === "true";

const email = z.string().superRefine(rule(emailProblem));
const newPassword = z.string().superRefine(rule(passwordProblem));
const displayName = z.string().trim().min(1).max(100);
const role = z.enum(roles);

// Requests

export const credentialsSchema = z.object({
  email,
  password: newPassword,
  name: displayName.optional(),
});

/** Login checks nothing but presence: a wrong password of any length is just a 401. */
export const loginSchema = z.object({
  email: z.string().min(1).max(254),
  password: z.string().min(1).max(256),
});

export const createTokenSchema = z.strictObject({
  name: z.string().trim().min(1).max(100),
  ttlDays: z.number().int().min(1).max(365).optional(),
});

export const createUserSchema = z.strictObject({
  email,
  password: newPassword,
  role,
  name: displayName.optional(),
});

export const updateUserSchema = z.strictObject({
  role: role.optional(),
  active: z.boolean().optional(),
  name: displayName.optional(),
});

const positive = z.number().positive();

/**
 * A partial settings document. Top-level keys are checked against the
 * defaults, so a field added to InfrastructureSettings is accepted without
 * touching this file; settingsProblems then validates the merged whole.
 */
export const settingsUpdateSchema = z
  .looseObject({
    cvmEnabled: z.boolean().optional(),
    runtime: z.enum(runtimeChoices).optional(),
    supervisorPrivileges: z
      .strictObject({
        mode: z.enum(["privileged", "capabilities"]).optional(),
        capabilities: z.array(z.string().max(64)).max(64).optional(),
      })
      .optional(),
    limits: z
      .strictObject({
        minCpu: positive.optional(),
        maxCpu: positive.optional(),
        minMemoryGiB: positive.optional(),
        maxMemoryGiB: positive.optional(),
        minDiskGiB: positive.optional(),
        maxDiskGiB: positive.optional(),
      })
      .optional(),
    publicPorts: z.boolean().optional(),
    portsHost: z.string().max(253).optional(),
    idleStopMinutes: z.number().optional(),
    force: z.boolean().optional(),
  })
  .superRefine((value, ctx) => {
    const known = new Set([...Object.keys(defaultSettings), "force"]);
    for (const key of Object.keys(value)) {
      if (!known.has(key)) ctx.addIssue({ code: "custom", path: [key], message: "is not an infrastructure setting" });
    }
  });

export const createEnvironmentSchema = z.strictObject({
  name: z.string(),
  image: z.string(),
  cvm: z.boolean().optional(),
  cpu: z.number().optional(),
  memoryGiB: z.number().optional(),
  diskGiB: z.number().optional(),
  registryCredentials: z
    .strictObject({ username: z.string().min(1).max(256), password: z.string().max(4096) })
    .optional(),
});

export const rebuildSchema = z.strictObject({ keepDockerData: z.boolean().optional() });

export const environmentQuerySchema = z.object({
  owner: z.string().max(100).optional().describe("me (default), all (admins and managers), or a user id"),
  state: z.enum(environmentStates).optional(),
  kind: z.enum(["cvm", "standard"]).optional(),
  name: z.string().max(63).optional(),
});

export const deleteQuerySchema = z.object({ keepHome: flag.optional() });

export const logsQuerySchema = z.object({
  build: z.string().max(100).optional().describe("a build id, or latest (default)"),
  after: z.coerce.number().int().min(0).optional().describe("only lines with a greater seq"),
  follow: flag.optional().describe("keep the stream open until the build ends"),
});

export const auditQuerySchema = z.object({
  actor: z.string().max(100).optional(),
  action: z.string().max(100).optional(),
  target: z.string().max(300).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
  cursor: z.string().max(500).optional(),
});

export const reconcileQuerySchema = z.object({ removeOrphans: flag.optional() });

export const terminalQuerySchema = z.object({
  tty: flag.optional(),
  cols: z.coerce.number().int().min(1).max(1000).optional(),
  rows: z.coerce.number().int().min(1).max(1000).optional(),
  command: z.string().max(16_384).optional().describe("a JSON array of strings; a login shell when absent"),
});

// Responses (documentation only)

export const errorSchema = z.object({
  message: z.string(),
  detail: z.string().optional(),
  validations: z.array(z.object({ field: z.string(), detail: z.string() })).optional(),
});

export const userSchema = z.object({
  id: z.string(),
  email: z.string(),
  name: z.string(),
  role,
  active: z.boolean(),
  createdAt: z.string(),
});

export const tokenSchema = z.object({
  id: z.string(),
  userId: z.string(),
  kind: z.enum(["session", "api"]),
  name: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  lastUsedAt: z.string().optional(),
  revokedAt: z.string().optional(),
});

export const sessionSchema = z.object({ user: userSchema, token: z.string(), expiresAt: z.string() });
export const createdTokenSchema = z.object({ token: tokenSchema, secret: z.string() });
export const setupStatusSchema = z.object({ needsFirstAdmin: z.boolean(), cvmEnabled: z.boolean().optional() });

export const settingsSchema = z.object({
  cvmEnabled: z.boolean(),
  runtime: z.enum(runtimeChoices),
  supervisorPrivileges: z.object({ mode: z.enum(["privileged", "capabilities"]), capabilities: z.array(z.string()) }),
  limits: z.object({
    minCpu: z.number(),
    maxCpu: z.number(),
    minMemoryGiB: z.number(),
    maxMemoryGiB: z.number(),
    minDiskGiB: z.number(),
    maxDiskGiB: z.number(),
  }),
  publicPorts: z.boolean(),
  portsHost: z.string(),
  idleStopMinutes: z.number(),
});

const checkStatus = z.enum(["pass", "warn", "fail"]);
export const checksSchema = z.object({
  checks: z.array(
    z.object({
      id: z.string(),
      title: z.string(),
      status: checkStatus,
      evidence: z.string(),
      remedy: z.string().optional(),
    }),
  ),
  worst: checkStatus,
});

export const auditEntrySchema = z.object({
  id: z.string(),
  at: z.string(),
  actorId: z.string(),
  actorEmail: z.string(),
  action: z.string(),
  target: z.string(),
  before: z.unknown(),
  after: z.unknown(),
});

export const environmentSchema = z.object({
  id: z.string(),
  ownerId: z.string(),
  ownerEmail: z.string(),
  name: z.string(),
  image: z.string(),
  cvm: z.boolean(),
  cpu: z.number(),
  memoryGiB: z.number(),
  diskGiB: z.number(),
  state: z.enum(environmentStates),
  stateReason: z.string().optional(),
  runtime: z.enum(["userns", "sysbox", "none"]),
  systemd: z.enum(["running", "degraded", "starting", "unavailable", "unknown"]),
  failedUnits: z.array(z.string()),
  docker: z.enum(["answering", "not-answering", "absent", "unknown"]),
  buildId: z.string().optional(),
  timeline: z.array(z.object({ state: z.enum(environmentStates), at: z.string(), reason: z.string().optional() })),
  createdAt: z.string(),
  updatedAt: z.string(),
  version: z.number(),
});

const outcome = z.enum(["running", "failed", "stopped", "deleted"]);
export const buildSchema = z.object({
  id: z.string(),
  environmentId: z.string(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  outcome: outcome.optional(),
});

export const logStreamItemSchema = z.union([
  z.object({ buildId: z.string(), seq: z.number(), at: z.string(), text: z.string() }),
  z.object({ end: z.literal(true), outcome: outcome.optional() }),
]);

export const environmentEventSchema = z.union([
  z.object({ type: z.literal("environment"), environment: environmentSchema }),
  z.object({ type: z.literal("deleted"), id: z.string() }),
  z.object({ type: z.literal("heartbeat"), at: z.string() }),
]);

export const reconcileReportSchema = z.object({
  vanished: z.array(z.object({ id: z.string(), name: z.string(), reason: z.string() })),
  orphans: z.array(z.object({ ref: z.string(), environmentId: z.string(), removed: z.boolean() })),
});

export const itemsOf = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });
export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), nextCursor: z.string().optional() });
