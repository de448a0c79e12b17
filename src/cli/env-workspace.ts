/**
 * `cvm env idle NAME [MINUTES|site]`: when an environment stops for want of
 * use, and its own idle time. Registered under `cvm env` beside the build
 * commands of env.ts.
 */

import type { Command } from "commander";
import { CvmError } from "../core/errors.js";
import { configuredClient } from "./config.js";
import { printFields, printJson } from "./output.js";

function minutesOf(value: string): number | null {
  if (value === "site") return null;
  if (!/^\d+$/.test(value)) {
    throw new CvmError("BAD_REQUEST", `idle time must be whole minutes (0: never) or "site" (got "${value}")`, {
      validations: [{ field: "minutes", detail: "must be whole minutes or site" }],
    });
  }
  return Number(value);
}

export function register(program: Command): void {
  const env = program.commands.find((c) => c.name() === "env");
  if (!env) throw new Error("cvm env is registered before its workspace commands");
  env
    .command("idle")
    .description("when the environment stops unless used; with MINUTES (0: never) or `site`, set its own idle time")
    .argument("<name>")
    .argument("[minutes]")
    .option("--json")
    .action(async (ref: string, minutes: string | undefined, options: { json?: boolean }) => {
      const client = configuredClient();
      const status = minutes === undefined ? await client.idle(ref) : await client.setIdle(ref, minutesOf(minutes));
      if (options.json) return printJson(status);
      printFields([
        ["idle stop", status.minutes === 0 ? "never" : `after ${status.minutes} minutes without use`],
        ["set by", status.source === "site" ? "the site's default" : "this environment"],
        ["last used", status.lastActiveAt],
        ["stops at", status.stopsAt],
      ]);
    });
}
