/** `cvm env create|list|show|start|stop|rebuild|delete|logs`. */

import { type Command, Option } from "commander";
import { type CvmClient, collectPages } from "../client/index.js";
import type { Environment, EnvironmentKind, EnvironmentState, EnvironmentSummary } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import { type FieldNames, inFlagTerms, numberFlag, positiveWholeNumber } from "./arguments.js";
import { configuredClient } from "./config.js";
import { printWorkspace, workspaceOf } from "./env-workspace.js";
import { nextSteps, stateSentence } from "./next-steps.js";
import { age, examples, printFields, printJson, printTable } from "./output.js";
import { waitUntilResting } from "./progress.js";
import { confirm, interactive, registryCredentials as registryCredentialsFromFlags } from "./prompt.js";

/** The flags `cvm env create` sets each field of the request with. */
const createFields: FieldNames = {
  name: "<name>",
  image: "--image",
  cvm: "--cvm",
  cpu: "--cpu",
  memoryGiB: "--memory",
  diskGiB: "--disk",
  "registryCredentials.username": "--registry-user",
  "registryCredentials.password": "--registry-password-stdin",
};

const nameArgument = "the environment: its name, or its id";

/** Waiting is what start and rebuild do now; scripts that still pass --follow get the same. */
const followCompat = () => new Option("--follow").hideHelp();

interface CreateOptions {
  image: string;
  cvm?: boolean;
  cpu?: number;
  memory?: number;
  disk?: number;
  registryUser?: string;
  registryPasswordStdin?: boolean;
  follow?: boolean;
  json?: boolean;
}

const printLine = (line: string) => process.stdout.write(`${line}\n`);

/** Tells how an action ended; a start or rebuild that does not end running exits 1. */
function report(final: Environment, expected: EnvironmentState, since: number): void {
  const took = `${((Date.now() - since) / 1000).toFixed(1)} s`;
  printLine(`${stateSentence(final)} (${took})`);
  if (final.state !== expected) {
    for (const step of nextSteps(final)) process.stderr.write(`${step}\n`);
    process.exitCode = 1;
  }
}

async function followToEnd(client: CvmClient, environment: Environment, since = Date.now()): Promise<void> {
  const final = await waitUntilResting(client, environment, printLine, { build: true });
  report(final, "running", since);
}

interface ListOptions {
  all?: boolean;
  state?: EnvironmentState;
  kind?: EnvironmentKind;
  name?: string;
  limit?: number;
  json?: boolean;
}

function kind(environment: EnvironmentSummary): string {
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

interface ActionOptions {
  detach?: boolean;
  json?: boolean;
  keepDockerData?: boolean;
}

/**
 * start, stop and rebuild: asks, then waits for the environment to come to
 * rest, showing its progress (a build's log; stop's states), unless detached.
 * With --json the environment is printed once, as it rests (or as asked, detached).
 */
function action(
  name: "start" | "stop" | "rebuild",
  run: (client: CvmClient, ref: string, options: ActionOptions) => Promise<Environment>,
) {
  return async (ref: string, options: ActionOptions) => {
    const client = configuredClient();
    const since = Date.now();
    const environment = await run(client, ref, options);
    if (options.detach) {
      if (options.json) return printJson(environment);
      printLine(`${environment.name}: ${name} requested, now ${environment.state}`);
      printLine(`Follow it: cvm env ${name === "stop" ? "show" : "logs --follow"} ${environment.name}`);
      return;
    }
    if (!options.json) printLine(`${environment.name}: ${name} requested, now ${environment.state}`);
    const print = options.json ? () => {} : printLine;
    const final = await waitUntilResting(client, environment, print, { build: name !== "stop" });
    if (options.json) {
      printJson(final);
      if (final.state !== (name === "stop" ? "stopped" : "running")) process.exitCode = 1;
      return;
    }
    report(final, name === "stop" ? "stopped" : "running", since);
  };
}

export function register(program: Command): void {
  const env = program
    .command("env")
    .description("your environments: create, list, start, stop, rebuild, delete; `cvm env` lists them")
    .addHelpText(
      "after",
      examples(
        "cvm env create dev --image debian:bookworm --follow",
        "cvm env create vm --image ubuntu:24.04 --cvm --cpu 4 --memory 8",
        "cvm env list",
        "cvm ssh dev",
      ),
    );

  env
    .command("create")
    .description("create an environment and build it")
    .argument("<name>", "a DNS label, unique among your environments")
    .requiredOption("--image <ref>", "an OCI image reference")
    .option("--cvm", "a container-based VM: systemd as PID 1 and Docker inside")
    .option("--cpu <n>", "CPUs", numberFlag("--cpu", "CPUs"))
    .option("--memory <GiB>", "memory in GiB", numberFlag("--memory", "GiB"))
    .option("--disk <GiB>", "disk in GiB", numberFlag("--disk", "GiB"))
    .option("--registry-user <user>", "registry credentials for a private image")
    .option(
      "--registry-password-stdin",
      "read the registry password from standard input (or set CVM_REGISTRY_PASSWORD; else it is asked for)",
    )
    .option("--follow", "stream the build log until the environment runs or fails")
    .option("--json")
    .addHelpText(
      "after",
      examples(
        "cvm env create dev --image debian:bookworm --follow",
        "cvm env create vm --image ubuntu:24.04 --cvm --cpu 4 --memory 8 --disk 40",
        "cvm env create app --image registry.example.com/team/app:1 --registry-user me --registry-password-stdin",
      ),
    )
    .action(async (name: string, options: CreateOptions) => {
      const client = configuredClient();
      const since = Date.now();
      const registryCredentials = await registryCredentialsFromFlags(options);
      const environment = await inFlagTerms(createFields, () =>
        client.createEnvironment({
          name,
          image: options.image,
          cvm: options.cvm ?? false,
          cpu: options.cpu,
          memoryGiB: options.memory,
          diskGiB: options.disk,
          registryCredentials,
        }),
      );
      if (options.json && !options.follow) return printJson(environment);
      process.stdout.write(`Created ${environment.name} (${kind(environment)}, ${environment.id}); building\n`);
      if (options.follow) await followToEnd(client, environment, since);
      else process.stdout.write(`Follow its build with: cvm env logs ${environment.name} --follow\n`);
    });

  env
    .command("list", { isDefault: true })
    .description("your environments, newest first (every user's with --all); the default of `cvm env`")
    .option("--all", "every user's environments (site admins and managers)")
    .option("--state <state>", "only those in this state, such as running or failed")
    .option("--kind <kind>", "cvm or standard")
    .option("--name <part>", "only names containing this")
    .option(
      "--limit <n>",
      "at most this many (default: all, read a page at a time)",
      positiveWholeNumber("--limit", "items"),
    )
    .option("--json")
    .addHelpText(
      "after",
      examples("cvm env list", "cvm env list --state failed", "cvm env list --all --kind cvm --json"),
    )
    // The server checks the state, kind and limit as given, and answers a 400 naming them.
    .action(async (options: ListOptions) => {
      const client = configuredClient();
      const query = {
        owner: options.all ? "all" : "me",
        state: options.state,
        kind: options.kind,
        q: options.name,
      };
      const items = await collectPages((page) => client.listEnvironments({ ...query, ...page }), {
        max: options.limit,
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
    .description("an environment's state, resources, systemd and Docker inside, and its timeline")
    .argument("<name>", nameArgument)
    .option("--json")
    .addHelpText("after", examples("cvm env show dev", "cvm env show dev --json"))
    .action(async (ref: string, options: { json?: boolean }) => {
      const client = configuredClient();
      const environment = await client.environment(ref);
      if (options.json) return printJson({ ...environment, ...(await workspaceOf(client, environment)) });
      show(environment);
      printWorkspace(await workspaceOf(client, environment));
    });

  const detach = "return once asked, without waiting for the outcome";
  env
    .command("start")
    .description("start a stopped or failed environment, and wait until it runs (its build log meanwhile)")
    .argument("<name>", nameArgument)
    .option("--detach", detach)
    .addOption(followCompat())
    .option("--json", "the environment once it runs (or fails)")
    .addHelpText("after", examples("cvm env start dev", "cvm env start dev --detach"))
    .action(action("start", (client, ref) => client.startEnvironment(ref)));
  env
    .command("stop")
    .description("stop an environment (its home and disk are kept), and wait until it has stopped")
    .argument("<name>", nameArgument)
    .option("--detach", detach)
    .option("--json", "the environment once stopped")
    .addHelpText("after", examples("cvm env stop dev", "cvm env stop dev --detach"))
    .action(action("stop", (client, ref) => client.stopEnvironment(ref)));
  env
    .command("rebuild")
    .description("build an environment again from its image, keeping its home, and wait until it runs")
    .argument("<name>", nameArgument)
    .option("--keep-docker-data", "keep the inner Docker's images and containers (CVMs)")
    .option("--detach", detach)
    .addOption(followCompat())
    .option("--json", "the environment once it runs (or fails)")
    .addHelpText("after", examples("cvm env rebuild dev", "cvm env rebuild vm --keep-docker-data"))
    .action(
      action("rebuild", (client, ref, options) =>
        client.rebuildEnvironment(ref, { keepDockerData: options.keepDockerData }),
      ),
    );

  env
    .command("delete")
    .description("delete an environment and, unless --keep-home, its home; asks first")
    .argument("<name>", nameArgument)
    .option("--keep-home", "keep the home volume")
    .option("-y, --yes", "do not ask (required where there is no terminal to ask on)")
    .addHelpText("after", examples("cvm env delete dev", "cvm env delete dev --yes --keep-home"))
    .action(async (ref: string, options: { keepHome?: boolean; yes?: boolean }) => {
      if (!options.yes && !interactive()) {
        throw new CvmError(
          "BAD_REQUEST",
          `Not deleted: there is no terminal to confirm on; to delete ${ref}, pass --yes`,
        );
      }
      if (!options.yes && !(await confirm(`Delete ${ref} and ${options.keepHome ? "keep" : "its"} home?`))) {
        throw new CvmError("BAD_REQUEST", "Not deleted");
      }
      await configuredClient().deleteEnvironment(ref, { keepHome: options.keepHome });
      process.stdout.write(`Deleted ${ref}\n`);
    });

  env
    .command("logs")
    .description("an environment's build log: each step and state change of its latest build")
    .argument("<name>", nameArgument)
    .option("--follow", "keep streaming until the build ends")
    .option("--build <id>", "a build's id; the latest by default")
    .option("--json")
    .addHelpText("after", examples("cvm env logs dev", "cvm env logs dev --follow"))
    .action(async (ref: string, options: { follow?: boolean; build?: string; json?: boolean }) => {
      const client = configuredClient();
      for await (const item of client.logs(ref, { follow: options.follow, build: options.build })) {
        if (options.json) process.stdout.write(`${JSON.stringify(item)}\n`);
        else if (!("end" in item)) process.stdout.write(`${item.at.slice(11, 23)}  ${item.text}\n`);
      }
    });
}
