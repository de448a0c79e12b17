/**
 * The zod schemas of the API: what each route reads (bodies, query strings)
 * and answers. They are the one source of the API's shapes: the routes
 * validate requests with them, the OpenAPI document is generated from them,
 * src/api/contract.ts infers the client's types from them, and the tests
 * check every answer against them. Domain entities (Environment, User...)
 * come from src/core/schemas.ts; semantic rules (DNS-label names, image
 * references, size limits, emails) live in src/core and are attached here,
 * so every route reports them the same way.
 */

import { z } from "zod";
import { environmentKinds, environmentStates, nameRule } from "../core/environment.js";
import {
  auditEntrySchema,
  buildLogLineSchema,
  buildSchema,
  environmentLimitsSchema,
  environmentNetworkSchema,
  environmentSchema,
  environmentSpecSchema,
  environmentSummarySchema,
  infrastructureSettingsSchema,
  pageOf,
  poolMemberSchema,
  registryCredentialsSchema,
  supervisorPrivilegesSchema,
  tokenSchema,
  userQuotasSchema,
  userSchema,
  warmPoolSchema,
} from "../core/schemas.js";
import { emailProblem, emailRule, passwordProblem, passwordRule } from "../core/user.js";
import { checkStatuses } from "./contract.js";

// The entities routes answer as they are, under the names the routes use.
export {
  environmentSchema,
  errorBodySchema,
  infrastructureSettingsSchema,
  supervisorReportSchema,
  userSchema,
} from "../core/schemas.js";

/** Turns a core problem function (`undefined` when fine) into a zod check. */
function rule(problem: (value: unknown) => string | undefined) {
  return (value: unknown, ctx: z.RefinementCtx) => {
    const detail = problem(value);
    if (detail) ctx.addIssue({ code: "custom", message: detail });
  };
}

const flag = z.enum(["0", "1", "true", "false"]);
export const isSet = (value: string | undefined) => value === "1" || value === "true";

// The limits are stated in the schema (so the OpenAPI document shows them) and checked by core's rule (its messages).
const email = z
  .string()
  .meta({ maxLength: emailRule.maxLength, pattern: emailRule.pattern.source })
  .superRefine(rule(emailProblem));
const newPassword = z
  .string()
  .meta({ minLength: passwordRule.minLength, maxLength: passwordRule.maxLength })
  .describe(`At least ${passwordRule.minLength} and at most ${passwordRule.maxLength} characters`)
  .superRefine(rule(passwordProblem));
const displayName = z.string().trim().min(1).max(100);
const { role } = userSchema.shape;

/** `{ items: [...] }`: a whole list in one answer. */
export const itemsOf = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });

/** The most items one page may ask for. */
export const maxPageLimit = 500;

/**
 * Which page of a paged list (`{ items, nextCursor? }`, see pageOf): at most
 * `limit` items, after the `cursor` the page before answered as `nextCursor`.
 */
const pageQuery = (defaultLimit: number) => ({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(maxPageLimit)
    .default(defaultLimit)
    .describe(`Items per page, 1 to ${maxPageLimit}`),
  cursor: z.string().max(500).optional().describe("The nextCursor of the page before; the first page without it"),
});

// Accounts and tokens

export const credentialsSchema = z.object({
  email,
  password: newPassword,
  name: displayName.optional(),
});

/** The first account: credentials, and the one-time code from the server's log. */
export const firstAdminSchema = z.object({
  ...credentialsSchema.shape,
  setupCode: z
    .string()
    .min(1)
    .max(100)
    .describe("The one-time code the server prints in its log at first start ('first-run setup code')"),
});

/** Login checks nothing but presence: a wrong password of any length is just a 401. */
export const loginSchema = z.object({
  email: z.string().min(1).max(254),
  password: z.string().min(1).max(256),
});

export const sessionSchema = z.object({
  user: userSchema,
  token: z.string().describe("The secret; shown once, never stored in the clear"),
  expiresAt: z.string(),
});

export const setupStatusSchema = z.object({
  needsFirstAdmin: z.boolean(),
  cvmEnabled: z
    .boolean()
    .optional()
    .describe("Whether CVMs may be created now; public so a member's create form can offer the option"),
});

export const createTokenSchema = z.strictObject({
  name: z.string().trim().min(1).max(100),
  ttlDays: z.number().int().min(1).max(365).optional().describe("Days until it expires: 1 to 365, default 30"),
});

export const createdTokenSchema = z.object({ token: tokenSchema, secret: z.string() });
export const tokenListSchema = itemsOf(tokenSchema);

// Users

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

export const userQuerySchema = z.object({
  email: z.string().max(254).optional().describe("Only the account with this email, in any case"),
  ...pageQuery(100),
});

/** Oldest first. */
export const userListSchema = pageOf(userSchema);

// Infrastructure settings and checks

/**
 * Any part of the settings document, built from its schema, so a field added
 * to the settings is accepted here without touching this file;
 * settingsProblems then validates the merged whole.
 */
const {
  supervisorPrivileges: _privileges,
  limits: _limits,
  quotas: _quotas,
  network: _network,
  ...plainSettings
} = infrastructureSettingsSchema.shape;
export const settingsUpdateSchema = z.strictObject({
  ...z.object(plainSettings).partial().shape,
  supervisorPrivileges: z.strictObject(supervisorPrivilegesSchema.partial().shape).optional(),
  limits: z.strictObject(environmentLimitsSchema.partial().shape).optional(),
  quotas: z.strictObject(userQuotasSchema.partial().shape).optional(),
  network: z.strictObject(environmentNetworkSchema.partial().shape).optional(),
  force: z
    .boolean()
    .optional()
    .describe("Turn CVMs on even though infrastructure checks fail; the audit log records it"),
});

// Warm pools

/** PUT /pools: one pool set (a count of 0 removes it); sizes left out are those a create leaves out. */
export const poolUpdateSchema = z.strictObject({
  image: z.string().min(1).max(512),
  cpu: z.number().optional(),
  memoryGiB: z.number().optional(),
  diskGiB: z.number().optional(),
  count: z.number().int().describe("How many to keep ready; 0 removes the pool"),
});

export const poolStatusSchema = warmPoolSchema.extend({
  key: z.string().describe("The pool's image and size, as its members name it"),
  ready: z.number(),
  filling: z.number(),
  failed: z.number(),
});

export const poolsStatusSchema = z.object({
  supported: z.boolean().describe("Whether this server's provider keeps warm pools (the docker provider does)"),
  pools: z.array(poolStatusSchema),
  members: z.array(poolMemberSchema),
  held: z
    .object({ cvms: z.number(), cpu: z.number(), memoryGiB: z.number(), diskGiB: z.number() })
    .describe("What the members hold of the machine while they wait, counted against its capacity"),
  capacity: z
    .object({ cpu: z.number(), memoryGiB: z.number() })
    .optional()
    .describe("The CPUs and memory of the machine the members run on; the pools may not hold more in all"),
});

/** One infrastructure check's result (GET /settings/infrastructure/checks, `cvm doctor`). */
export const checkResultSchema = z.object({
  id: z.string(),
  title: z.string(),
  status: z.enum(checkStatuses),
  evidence: z.string(),
  remedy: z.string().optional(),
});

/** Images the trial Pod asks for beside the warm pools' (what `cvm doctor --image` gives). */
export const checksQuerySchema = z.object({
  images: z
    .string()
    .max(4000)
    .optional()
    .describe("CVM images (comma-separated) whose registries the trial Pod asks from inside the cluster"),
});

export const checksSchema = z.object({ checks: z.array(checkResultSchema), worst: z.enum(checkStatuses) });

/** One line of the checks' progress stream: each check as it starts, what a long one waits on, its result, then the worst of them. */
export const checkProgressSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("running"), id: z.string(), title: z.string() }),
  z
    .object({ type: z.literal("note"), id: z.string(), text: z.string() })
    .describe("What a long check is waiting on meanwhile (the trial Pod: scheduled, pulling, probing)"),
  z.object({ type: z.literal("result"), check: checkResultSchema }),
  z.object({ type: z.literal("done"), worst: z.enum(checkStatuses) }),
]);

// The audit log

export const auditQuerySchema = z.object({
  actor: z.string().max(100).optional(),
  action: z.string().max(100).optional(),
  target: z.string().max(300).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  ...pageQuery(50),
});

// Environments

export const environmentQuerySchema = z.object({
  owner: z.string().max(100).optional().describe("me (default), all (admins and managers), or a user id"),
  state: z.enum(environmentStates).optional(),
  kind: z.enum(environmentKinds).optional(),
  name: z.string().max(63).optional().describe("Only the environment with this name"),
  q: z.string().max(63).optional().describe("Only environments whose name contains this"),
  ...pageQuery(100),
});

/** Newest first, without timelines. */
export const environmentListSchema = pageOf(environmentSummarySchema);

/** Any size left out gets its default; the name, image and sizes are checked against the rules in src/core. */
export const createEnvironmentSchema = z.strictObject({
  ...environmentSpecSchema.partial({ cvm: true, cpu: true, memoryGiB: true, diskGiB: true }).shape,
  // Stated for the document; the environment service checks it (and the rest of the spec) against core's rule.
  name: z.string().meta({ maxLength: nameRule.maxLength, pattern: nameRule.pattern.source }),
  registryCredentials: registryCredentialsSchema.optional(),
});

export const rebuildSchema = z.strictObject({
  keepDockerData: z.boolean().optional().describe("Keep the inner Docker's images and containers (CVMs)"),
  image: z
    .string()
    .max(1000)
    .optional()
    .describe("Build from this image instead (a failed build's way out); the home is kept"),
});

export const deleteQuerySchema = z.object({ keepHome: flag.optional() });

export const buildListSchema = itemsOf(buildSchema);

export const logsQuerySchema = z.object({
  build: z.string().max(100).optional().describe("a build id, or latest (default)"),
  after: z.coerce.number().int().min(0).optional().describe("only lines with a greater seq"),
  follow: flag.optional().describe("keep the stream open until the build ends"),
});

/** One line of a build-log stream: a log line, then, when the build is over, its end. */
export const logStreamItemSchema = z.union([
  buildLogLineSchema,
  z.object({ end: z.literal(true), outcome: buildSchema.shape.outcome }),
]);

/** One line of the /events stream: environment changes, for live lists. */
export const environmentEventSchema = z.union([
  z.object({ type: z.literal("environment"), environment: environmentSchema }),
  z.object({ type: z.literal("deleted"), id: z.string() }),
  z.object({ type: z.literal("heartbeat"), at: z.string() }),
]);

// The terminal (a WebSocket; its messages are not in the OpenAPI document)

export const terminalQuerySchema = z.object({
  tty: flag.optional(),
  cols: z.coerce.number().int().min(1).max(1000).optional(),
  rows: z.coerce.number().int().min(1).max(1000).optional(),
  command: z.string().max(16_384).optional().describe("a JSON array of strings; a login shell when absent"),
  user: z
    .enum(["root"])
    .optional()
    .describe("root; by default the image's own user (uid 1000, else its first ordinary account), in its home"),
});

/** The command a terminal runs, once `command` is parsed from JSON. */
export const terminalCommandSchema = z.array(z.string().min(1).max(4096)).min(1).max(256);

/** Text frames from the client. */
export const terminalClientMessageSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("resize"),
    cols: z.number().int().min(1).max(1000),
    rows: z.number().int().min(1).max(1000),
  }),
  z.object({ type: z.literal("eof") }),
]);

/** Text frames from the server. */
export const terminalServerMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("exit"), code: z.number() }),
  z.object({ type: z.literal("error"), message: z.string() }),
]);

// Operations

export const reconcileQuerySchema = z.object({ removeOrphans: flag.optional() });

export const reconcileReportSchema = z.object({
  vanished: z
    .array(z.object({ id: z.string(), name: z.string(), reason: z.string() }))
    .describe(
      "Environments whose workload had vanished, or whose build was cut off, now marked failed with the reason",
    ),
  resumed: z
    .array(z.object({ id: z.string(), name: z.string() }))
    .describe("Environments whose build was cut off (a server stopped or died) and goes on now"),
  finished: z
    .array(z.object({ id: z.string(), name: z.string(), action: z.enum(["stop", "delete"]) }))
    .describe("Stops and deletes a server left halfway, now done"),
  orphans: z
    .array(z.object({ ref: z.string(), environmentId: z.string(), removed: z.boolean() }))
    .describe("Workloads with cvm's labels and no environment"),
});

export const auditPageSchema = pageOf(auditEntrySchema);

// About the server itself

export const buildInfoSchema = z.object({
  version: z.string().describe("cvm's version, such as 0.1.0: `cvm version` shows it beside the CLI's own"),
});
