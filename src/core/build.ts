/** A build of an environment and the lines of its log. */

// The shapes themselves are zod schemas in ./schemas.ts; their types are re-exported here.
export type { Build, BuildLogLine } from "./schemas.js";

/** How a build ended; `running` when it brought the environment up. */
export const buildOutcomes = ["running", "failed", "stopped", "deleted"] as const;
export type BuildOutcome = (typeof buildOutcomes)[number];
