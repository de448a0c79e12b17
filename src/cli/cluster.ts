/**
 * `cvm cluster gke|eks|aks`: writes what to run for a cluster that can host
 * CVMs, and refuses (saying why) versions and node images that cannot.
 */

import { readFile, writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { CvmError } from "../core/errors.js";
import { type RuntimeChoice, runtimeChoices } from "../core/settings.js";
import type { ClusterPlan } from "../infra/cluster-setup/index.js";
import { printJson } from "./output.js";

interface CommonOptions {
  name?: string;
  region?: string;
  version?: string;
  nodes?: string;
  machineType?: string;
  runtime: string;
  json?: boolean;
}

/** The planners (and the YAML library the EKS plan needs) load only when a plan is asked for. */
const planners = () => import("../infra/cluster-setup/index.js");

function runtimeOption(value: string): RuntimeChoice {
  if (!(runtimeChoices as readonly string[]).includes(value)) {
    throw new CvmError("BAD_REQUEST", `--runtime takes one of ${runtimeChoices.join(", ")}`);
  }
  return value as RuntimeChoice;
}

function nodeCount(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const count = Number(value);
  if (!Number.isInteger(count)) throw new CvmError("BAD_REQUEST", `--nodes takes a whole number, not ${value}`);
  return count;
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new CvmError("BAD_REQUEST", `${flag} is required`);
  return value;
}

/** Notes, files written, the commands, then the node steps: in the order the user acts. */
export function formatPlan(plan: ClusterPlan, written: string[]): string {
  const lines: string[] = [];
  for (const note of plan.notes) lines.push(`# ${note}`);
  for (const path of written) lines.push(`# wrote ${path}`);
  lines.push("", "Run:", "", ...plan.commands.flatMap((c) => [c, ""]));
  if (plan.nodeSteps.length > 0) {
    lines.push("Then, for sysbox on the nodes:", "", ...plan.nodeSteps, "");
  }
  return `${lines.join("\n")}`;
}

async function show(plan: ClusterPlan, options: { json?: boolean }, toStdout: boolean): Promise<void> {
  const written: string[] = [];
  if (!toStdout) {
    for (const file of plan.files) {
      await writeFile(file.path, file.content);
      written.push(file.path);
    }
  }
  if (options.json) {
    printJson({ ...plan, written });
    return;
  }
  if (toStdout) for (const file of plan.files) process.stdout.write(`# ${file.path}\n${file.content}\n`);
  process.stdout.write(formatPlan(plan, written));
}

function common(command: Command): Command {
  return command
    .option("--name <name>", "the cluster's name")
    .option("--region <region>", "the cloud region")
    .option("--version <version>", "the Kubernetes (control plane) version; the cloud's default when absent")
    .option("--nodes <count>", "how many nodes")
    .option("--machine-type <type>", "the nodes' machine (instance, VM) type")
    .option("--runtime <runtime>", `the isolation runtime CVMs use: ${runtimeChoices.join(", ")}`, "auto")
    .option("--json", "print the plan as JSON");
}

export function register(program: Command): void {
  const cluster = program.command("cluster").description("write the commands for a cluster that can host CVMs");

  common(cluster.command("gke").description("a GKE cluster, or a node pool in one, with Ubuntu nodes"))
    .option("--zone <zone>", "a zonal cluster's zone (or --region for a regional one)")
    .option("--project <project>", "the Google Cloud project")
    .option("--node-version <version>", "the nodes' version (not newer than the master's)")
    .option("--image-type <type>", "UBUNTU_CONTAINERD or UBUNTU", "UBUNTU_CONTAINERD")
    .option("--node-pool <pool>", "add this node pool to the existing cluster --name instead of creating a cluster")
    .action(
      async (
        options: CommonOptions & {
          zone?: string;
          project?: string;
          nodeVersion?: string;
          imageType: string;
          nodePool?: string;
        },
      ) => {
        const plan = (await planners()).planGke({
          name: required(options.name, "--name"),
          zone: options.zone,
          region: options.region,
          project: options.project,
          version: options.version,
          nodeVersion: options.nodeVersion,
          nodes: nodeCount(options.nodes) ?? 3,
          machineType: options.machineType ?? "n2-standard-4",
          imageType: options.imageType,
          runtime: runtimeOption(options.runtime),
          nodePool: options.nodePool,
        });
        await show(plan, options, true);
      },
    );

  common(cluster.command("eks").description("an eksctl ClusterConfig with an Ubuntu node group"))
    .option("--ami-family <family>", "the node group's amiFamily (Ubuntu1804 or newer; Ubuntu2204 by default)")
    .option("--node-group <name>", "the node group cvm adds or fixes", "cvm")
    .option("--config <file>", "an existing ClusterConfig to extend, keeping its other fields and comments")
    .option("--out <file>", "where to write the ClusterConfig (- for stdout); --config's file, else <name>.eksctl.yaml")
    .action(
      async (options: CommonOptions & { amiFamily?: string; nodeGroup: string; config?: string; out?: string }) => {
        const existing = options.config === undefined ? undefined : await readFile(options.config, "utf8");
        const out = options.out ?? options.config ?? `${required(options.name, "--name (or --config)")}.eksctl.yaml`;
        const plan = (await planners()).planEks({
          name: options.name,
          region: options.region,
          version: options.version,
          nodes: nodeCount(options.nodes),
          instanceType: options.machineType,
          amiFamily: options.amiFamily,
          runtime: runtimeOption(options.runtime),
          nodeGroup: options.nodeGroup,
          existing,
          path: out === "-" ? "cluster.yaml" : out,
        });
        await show(plan, options, out === "-");
      },
    );

  common(cluster.command("aks").description("an AKS cluster with Ubuntu nodes"))
    .option("--resource-group <group>", "the Azure resource group")
    .option("--os-sku <sku>", "the nodes' OS SKU", "Ubuntu")
    .action(async (options: CommonOptions & { resourceGroup?: string; osSku: string }) => {
      const plan = (await planners()).planAks({
        name: required(options.name, "--name"),
        resourceGroup: required(options.resourceGroup, "--resource-group"),
        region: options.region,
        version: options.version,
        nodes: nodeCount(options.nodes) ?? 3,
        vmSize: options.machineType ?? "Standard_D4s_v5",
        osSku: options.osSku,
        runtime: runtimeOption(options.runtime),
      });
      await show(plan, options, true);
    });
}
