/**
 * The environment as a place to work, in the CLI: `cvm env idle NAME
 * [MINUTES|site]` (when it stops for want of use, and its own idle time,
 * registered under `cvm env` beside the build commands of env.ts), and what
 * `cvm env show` adds for a running environment: usage against the limits,
 * the idle timer, and how to connect.
 */

import type { Command } from "commander";
import { sshHostSuffix } from "../api/contract.js";
import type { IdleStatus, UsageReport } from "../api/workspace-schemas.js";
import type { CvmClient } from "../client/index.js";
import type { Environment } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import { configuredClient } from "./config.js";
import { printFields, printJson } from "./output.js";

export interface WorkspaceView {
  usage?: UsageReport;
  idle?: IdleStatus;
  connect?: { ssh: string; cvmSsh: string };
}

/** 512 MiB, 1.5 GiB: whole MiB below a GiB, one decimal above. */
const gib = (bytes: number) =>
  bytes < 2 ** 30 ? `${Math.round(bytes / 2 ** 20)} MiB` : `${(bytes / 2 ** 30).toFixed(1)} GiB`;

/** Usage and idle status of a running environment; nothing for one that is not running. */
export async function workspaceOf(client: CvmClient, environment: Environment): Promise<WorkspaceView> {
  const idle = await client.idle(environment.id).catch(() => undefined);
  if (environment.state !== "running") return { idle };
  const usage = await client.usage(environment.id).catch(() => undefined);
  return {
    usage,
    idle,
    connect: { ssh: `ssh ${environment.name}${sshHostSuffix}`, cvmSsh: `cvm ssh ${environment.name}` },
  };
}

export function printWorkspace(view: WorkspaceView): void {
  const { usage, idle, connect } = view;
  const of = (used: string, limit?: string) => (limit ? `${used} of ${limit}` : `${used} (no limit)`);
  printFields([
    [
      "cpu",
      usage && of(`${usage.cpu.cores} cores`, usage.cpu.limitCores ? `${usage.cpu.limitCores} cores` : undefined),
    ],
    [
      "memory",
      usage && of(gib(usage.memory.usedBytes), usage.memory.limitBytes ? gib(usage.memory.limitBytes) : undefined),
    ],
    ...(usage?.disks ?? []).map((d): [string, string] => [
      `disk ${d.path}`,
      `${gib(d.usedBytes)} of ${gib(d.sizeBytes)} (${d.mount})`,
    ]),
    [
      "idle stop",
      idle &&
        (idle.minutes === 0
          ? "never"
          : `after ${idle.minutes} minutes without use${idle.stopsAt ? `, at ${idle.stopsAt}` : ""}`),
    ],
    ["connect", connect && `${connect.ssh}  (after cvm config-ssh), or ${connect.cvmSsh}`],
  ]);
}

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
