/** `cvm admin infra show|set`: Manage > Admin > Infrastructure, from a terminal. */

import type { Command } from "commander";
import type { InfrastructureSettingsUpdate } from "../api/contract.js";
import { CvmError } from "../core/errors.js";
import { type RuntimeChoice, runtimeChoices, type SupervisorPrivilegeMode } from "../core/settings.js";
import { configuredClient } from "./config.js";
import { printFields, printJson } from "./output.js";

interface SetOptions {
  cvm?: string;
  runtime?: string;
  privileges?: string;
  capabilities?: string;
  maxCpu?: number;
  maxMemory?: number;
  maxDisk?: number;
  force?: boolean;
  json?: boolean;
}

const toggles: Record<string, boolean> = { enabled: true, on: true, disabled: false, off: false };

function update(options: SetOptions): InfrastructureSettingsUpdate {
  const change: InfrastructureSettingsUpdate = {};
  if (options.cvm !== undefined) {
    if (!(options.cvm in toggles)) throw new CvmError("BAD_REQUEST", "--cvm takes enabled or disabled");
    change.cvmEnabled = toggles[options.cvm];
  }
  if (options.runtime !== undefined) {
    if (!(runtimeChoices as readonly string[]).includes(options.runtime)) {
      throw new CvmError("BAD_REQUEST", `--runtime takes one of ${runtimeChoices.join(", ")}`);
    }
    change.runtime = options.runtime as RuntimeChoice;
  }
  if (options.privileges !== undefined || options.capabilities !== undefined) {
    change.supervisorPrivileges = {};
    if (options.privileges !== undefined) {
      change.supervisorPrivileges.mode = options.privileges as SupervisorPrivilegeMode;
    }
    if (options.capabilities !== undefined) {
      change.supervisorPrivileges.capabilities = options.capabilities.split(",").map((c) => c.trim());
    }
  }
  const limits = { maxCpu: options.maxCpu, maxMemoryGiB: options.maxMemory, maxDiskGiB: options.maxDisk };
  if (Object.values(limits).some((v) => v !== undefined)) {
    change.limits = Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined));
  }
  if (options.force) change.force = true;
  return change;
}

export function register(program: Command): void {
  const infra = program
    .command("admin")
    .description("site administration")
    .command("infra")
    .description("infrastructure settings");
  infra
    .command("show", { isDefault: true })
    .option("--json")
    .action(async (options: { json?: boolean }) => {
      const settings = await configuredClient().infrastructure();
      if (options.json) return printJson(settings);
      printFields([
        ["CVMs", settings.cvmEnabled ? "enabled" : "disabled"],
        ["runtime", settings.runtime],
        [
          "supervisor",
          settings.supervisorPrivileges.mode === "privileged"
            ? "privileged"
            : `capabilities ${settings.supervisorPrivileges.capabilities.join(",")}`,
        ],
        ["cpu", `${settings.limits.minCpu} to ${settings.limits.maxCpu}`],
        ["memory", `${settings.limits.minMemoryGiB} to ${settings.limits.maxMemoryGiB} GiB`],
        ["disk", `${settings.limits.minDiskGiB} to ${settings.limits.maxDiskGiB} GiB`],
      ]);
    });
  infra
    .command("set")
    .option("--cvm <state>", "enabled or disabled")
    .option("--runtime <runtime>", runtimeChoices.join("|"))
    .option("--privileges <mode>", "how the supervisor is privileged: privileged or capabilities")
    .option("--capabilities <list>", "comma-separated capabilities for --privileges capabilities")
    .option("--max-cpu <n>", "largest CPU count an environment may ask for", Number)
    .option("--max-memory <GiB>", "largest memory an environment may ask for", Number)
    .option("--max-disk <GiB>", "largest disk an environment may ask for", Number)
    .option("--force", "turn CVMs on even though infrastructure checks fail (recorded in the audit log)")
    .option("--json")
    .action(async (options: SetOptions) => {
      const settings = await configuredClient().updateInfrastructure(update(options));
      if (options.json) return printJson(settings);
      process.stdout.write(`CVMs ${settings.cvmEnabled ? "enabled" : "disabled"}; runtime ${settings.runtime}\n`);
    });
}
