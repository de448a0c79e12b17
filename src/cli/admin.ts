/** `cvm admin infra show|set` (and `cvm admin pool`, pools.ts): Manage > Admin > Infrastructure, from a terminal. */

import { createWriteStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import type { InfrastructureSettingsUpdate } from "../api/contract.js";
import { CvmError } from "../core/errors.js";
import { type RuntimeChoice, runtimeChoices, type SupervisorPrivilegeMode } from "../core/settings.js";
import { type FieldNames, inFlagTerms, numberFlag } from "./arguments.js";
import { configuredClient } from "./config.js";
import { printFields, printJson } from "./output.js";
import * as pools from "./pools.js";

interface SetOptions {
  cvm?: string;
  runtime?: string;
  fuse?: string;
  tun?: string;
  lxcfs?: string;
  privileges?: string;
  capabilities?: string;
  maxCpu?: number;
  maxMemory?: number;
  maxDisk?: number;
  force?: boolean;
  json?: boolean;
}

/** The flags of `cvm admin infra set` that set each settings field. */
const settingFlags: FieldNames = {
  cvmEnabled: "--cvm",
  runtime: "--runtime",
  "supervisorPrivileges.mode": "--privileges",
  "supervisorPrivileges.capabilities": "--capabilities",
  "limits.maxCpu": "--max-cpu",
  "limits.maxMemoryGiB": "--max-memory",
  "limits.maxDiskGiB": "--max-disk",
};

const toggles: Record<string, boolean> = { enabled: true, on: true, disabled: false, off: false };

function update(options: SetOptions): InfrastructureSettingsUpdate {
  const change: InfrastructureSettingsUpdate = {};
  if (options.cvm !== undefined) {
    if (!(options.cvm in toggles)) throw new CvmError("BAD_REQUEST", "--cvm takes enabled or disabled");
    change.cvmEnabled = toggles[options.cvm];
  }
  for (const [flag, key] of [
    ["fuse", "fuseDevice"],
    ["tun", "tunDevice"],
    ["lxcfs", "lxcfs"],
  ] as const) {
    const value = options[flag];
    if (value === undefined) continue;
    if (!(value in toggles)) throw new CvmError("BAD_REQUEST", `--${flag} takes enabled or disabled`);
    change[key] = toggles[value];
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

/** Writes a backup from the server to a new owner-only file; answers its size. */
async function writeBackup(file: string): Promise<number> {
  const body = await configuredClient().backup();
  // Exclusive: a backup never overwrites another file.
  const out = createWriteStream(file, { flags: "wx", mode: 0o600 });
  await pipeline(Readable.fromWeb(body as import("node:stream/web").ReadableStream), out);
  return out.bytesWritten;
}

export function register(program: Command): void {
  const admin = program.command("admin").description("site administration");
  pools.register(admin);
  admin
    .command("backup")
    .description(
      "write a consistent snapshot of the server's store to FILE while it runs (site admins); bring it back with `cvm server --restore FILE`. With PostgreSQL, use pg_dump",
    )
    .argument("<file>", "a new file (0600)")
    .action(async (file: string) => {
      const bytes = await writeBackup(file);
      process.stdout.write(`Wrote ${file} (${bytes} bytes)\n`);
      process.stderr.write(
        "Registry passwords in it are sealed: keep the server's key (<data-dir>/secret.key or CVM_SECRET_KEY) with it, apart from it.\n",
      );
    });
  admin
    .command("rotate-secret-key")
    .description(
      "make a new key for sealing secrets in a data dir (the old one becomes secret.key.previous); the server seals every secret again at its next start",
    )
    .requiredOption("--data-dir <dir>", "the server's data dir")
    .action(async (options: { dataDir: string }) => {
      // The server's key file module (and node:crypto) load only for this command.
      const { rotateKeyFile } = await import("../server/secret-keys.js");
      const { previousId, currentId } = rotateKeyFile(options.dataDir);
      process.stdout.write(
        `Key ${previousId} is now secret.key.previous; the new key is ${currentId}. Restart the server: it seals every secret under ${currentId}; then delete secret.key.previous.\n`,
      );
    });
  const infra = admin.command("infra").description("infrastructure settings");
  infra
    .command("show", { isDefault: true })
    .option("--json")
    .action(async (options: { json?: boolean }) => {
      const settings = await configuredClient().infrastructure();
      if (options.json) return printJson(settings);
      printFields([
        ["CVMs", settings.cvmEnabled ? "enabled" : "disabled"],
        ["runtime", settings.runtime],
        ["FUSE", settings.fuseDevice ? "enabled" : "disabled"],
        ["TUN", settings.tunDevice ? "enabled" : "disabled"],
        ["LXCFS", settings.lxcfs ? "enabled" : "disabled"],
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
    .option("--fuse <state>", "enabled or disabled: CVMs get /dev/fuse")
    .option("--tun <state>", "enabled or disabled: CVMs get /dev/net/tun")
    .option(
      "--lxcfs <state>",
      "enabled or disabled: CVMs see their own limits in /proc (off: rootless tools may mount proc)",
    )
    .option("--privileges <mode>", "how the supervisor is privileged: privileged or capabilities")
    .option("--capabilities <list>", "comma-separated capabilities for --privileges capabilities")
    .option("--max-cpu <n>", "largest CPU count an environment may ask for", numberFlag("--max-cpu", "CPUs"))
    .option("--max-memory <GiB>", "largest memory an environment may ask for", numberFlag("--max-memory", "GiB"))
    .option("--max-disk <GiB>", "largest disk an environment may ask for", numberFlag("--max-disk", "GiB"))
    .option("--force", "turn CVMs on even though infrastructure checks fail (recorded in the audit log)")
    .option("--json")
    .action(async (options: SetOptions) => {
      const settings = await inFlagTerms(settingFlags, () => configuredClient().updateInfrastructure(update(options)));
      if (options.json) return printJson(settings);
      process.stdout.write(`CVMs ${settings.cvmEnabled ? "enabled" : "disabled"}; runtime ${settings.runtime}\n`);
    });
}
