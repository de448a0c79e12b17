/** `cvm env create|list|show|start|stop|rebuild|delete|logs`. */

import type { Command } from "commander";
import type { CvmClient } from "../client/index.js";
import type { Environment, EnvironmentKind, EnvironmentState } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import { configuredClient } from "./config.js";
import { printWorkspace, workspaceOf } from "./env-workspace.js";
import { age, printFields, printJson, printTable } from "./output.js";
import { confirm, interactive } from "./prompt.js";

interface CreateOptions {
  image: string;
  cvm?: boolean;
  cpu?: number;
  memory?: number;
  disk?: number;
  registryUser?: string;
  registryPassword?: string;
  follow?: boolean;
  json?: boolean;
}

/** Prints the build log as it grows; resolves with the build's outcome. */
async function follow(client: CvmClient, ref: string, options: { build?: string } = {}): Promise<string | undefined> {
  for await (const item of client.logs(ref, { follow: true, build: options.build })) {
    if ("end" in item) return item.outcome;
    process.stdout.write(`${item.at.slice(11, 23)}  ${item.text}\n`);
  }
  return undefined;
}

async function followToEnd(client: CvmClient, environment: Environment): Promise<void> {
  const outcome = await follow(client, environment.id, { build: environment.buildId });
  const final = await client.environment(environment.id);
  process.stdout.write(`${final.name} is ${final.state}${final.stateReason ? `: ${final.stateReason}` : ""}\n`);
  if (final.state !== "running" && outcome !== "running") process.exitCode = 1;
}

function kind(environment: Environment): string {
  return environment.cvm ? "cvm" : "standard";
}

function show(environment: Environment): void {
  printFields([
    ["name", environment.name],
    ["id", environment.id],
    ["owner", environment.ownerEmail],
    ["state", environment.state],
    ["reason", environment.stateReason],
    ["kind", kind(environment)],
    ["image", environment.image],
    ["resources", `${environment.cpu} CPU, ${environment.memoryGiB} GiB memory, ${environment.diskGiB} GiB disk`],
    ["runtime", environment.runtime],
    [
      "systemd",
      environment.failedUnits.length > 0
        ? `${environment.systemd} (failed: ${environment.failedUnits.join(", ")})`
        : environment.systemd,
    ],
    ["docker", environment.docker],
    ["created", environment.createdAt],
  ]);
  if (environment.timeline.length > 0) {
    process.stdout.write("timeline:\n");
    for (const change of environment.timeline) {
      process.stdout.write(`  ${change.at}  ${change.state}${change.reason ? `  (${change.reason})` : ""}\n`);
    }
  }
}

function action(
  name: "start" | "stop" | "rebuild",
  run: (client: CvmClient, ref: string, options: { keepDockerData?: boolean }) => Promise<Environment>,
) {
  return async (ref: string, options: { follow?: boolean; json?: boolean; keepDockerData?: boolean }) => {
    const client = configuredClient();
    const environment = await run(client, ref, options);
    if (options.json) return printJson(environment);
    process.stdout.write(`${environment.name}: ${name} requested, now ${environment.state}\n`);
    if (options.follow && name !== "stop") await followToEnd(client, environment);
  };
}

export function register(program: Command): void {
  const env = program.command("env").description("environments");

  env
    .command("create")
    .argument("<name>", "a DNS label, unique among your environments")
    .requiredOption("--image <ref>", "an OCI image reference")
    .option("--cvm", "a container-based VM: systemd as PID 1 and Docker inside")
    .option("--cpu <n>", "CPUs", Number)
    .option("--memory <GiB>", "memory in GiB", Number)
    .option("--disk <GiB>", "disk in GiB", Number)
    .option("--registry-user <user>", "registry credentials for a private image")
    .option("--registry-password <password>")
    .option("--follow", "stream the build log until the environment runs or fails")
    .option("--json")
    .action(async (name: string, options: CreateOptions) => {
      const client = configuredClient();
      const environment = await client.createEnvironment({
        name,
        image: options.image,
        cvm: options.cvm ?? false,
        cpu: options.cpu,
        memoryGiB: options.memory,
        diskGiB: options.disk,
        registryCredentials:
          options.registryUser !== undefined
            ? { username: options.registryUser, password: options.registryPassword ?? "" }
            : undefined,
      });
      if (options.json && !options.follow) return printJson(environment);
      process.stdout.write(`Created ${environment.name} (${kind(environment)}, ${environment.id}); building\n`);
      if (options.follow) await followToEnd(client, environment);
      else process.stdout.write(`Follow its build with: cvm env logs ${environment.name} --follow\n`);
    });

  env
    .command("list", { isDefault: true })
    .option("--all", "every user's environments (site admins and managers)")
    .option("--state <state>")
    .option("--kind <kind>", "cvm or standard")
    .option("--json")
    // The server checks the state and kind as given, and answers a 400 naming them.
    .action(async (options: { all?: boolean; state?: EnvironmentState; kind?: EnvironmentKind; json?: boolean }) => {
      const { items } = await configuredClient().listEnvironments({
        owner: options.all ? "all" : "me",
        state: options.state,
        kind: options.kind,
      });
      if (options.json) return printJson(items);
      if (items.length === 0) {
        process.stdout.write("No environments. Create one: cvm env create NAME --image REF [--cvm]\n");
        return;
      }
      printTable(
        ["NAME", "STATE", "KIND", "IMAGE", "CPU", "MEMORY", "DISK", "AGE", ...(options.all ? ["OWNER"] : [])],
        items.map((e) => [
          e.name,
          e.state,
          kind(e),
          e.image,
          e.cpu,
          `${e.memoryGiB}G`,
          `${e.diskGiB}G`,
          age(e.createdAt),
          ...(options.all ? [e.ownerEmail] : []),
        ]),
      );
    });

  env
    .command("show")
    .argument("<name>")
    .option("--json")
    .action(async (ref: string, options: { json?: boolean }) => {
      const client = configuredClient();
      const environment = await client.environment(ref);
      if (options.json) return printJson({ ...environment, ...(await workspaceOf(client, environment)) });
      show(environment);
      printWorkspace(await workspaceOf(client, environment));
    });

  env
    .command("start")
    .argument("<name>")
    .option("--follow")
    .option("--json")
    .action(action("start", (client, ref) => client.startEnvironment(ref)));
  env
    .command("stop")
    .argument("<name>")
    .option("--json")
    .action(action("stop", (client, ref) => client.stopEnvironment(ref)));
  env
    .command("rebuild")
    .argument("<name>")
    .option("--keep-docker-data", "keep the inner Docker's images and containers (CVMs)")
    .option("--follow")
    .option("--json")
    .action(
      action("rebuild", (client, ref, options) =>
        client.rebuildEnvironment(ref, { keepDockerData: options.keepDockerData }),
      ),
    );

  env
    .command("delete")
    .argument("<name>")
    .option("--keep-home", "keep the home volume")
    .option("-y, --yes", "do not ask")
    .action(async (ref: string, options: { keepHome?: boolean; yes?: boolean }) => {
      if (
        !options.yes &&
        interactive() &&
        !(await confirm(`Delete ${ref} and ${options.keepHome ? "keep" : "its"} home?`))
      ) {
        throw new CvmError("BAD_REQUEST", "Not deleted");
      }
      await configuredClient().deleteEnvironment(ref, { keepHome: options.keepHome });
      process.stdout.write(`Deleted ${ref}\n`);
    });

  env
    .command("logs")
    .argument("<name>")
    .option("--follow", "keep streaming until the build ends")
    .option("--build <id>", "a build's id; the latest by default")
    .option("--json")
    .action(async (ref: string, options: { follow?: boolean; build?: string; json?: boolean }) => {
      const client = configuredClient();
      for await (const item of client.logs(ref, { follow: options.follow, build: options.build })) {
        if (options.json) process.stdout.write(`${JSON.stringify(item)}\n`);
        else if (!("end" in item)) process.stdout.write(`${item.at.slice(11, 23)}  ${item.text}\n`);
      }
    });
}
