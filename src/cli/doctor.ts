/**
 * `cvm doctor`: can this machine (or this cluster) host CVMs? Runs the same
 * infrastructure checks the server runs before CVMs are turned on, here and
 * now, and exits 0 when all pass, 1 on warnings, 2 on failures.
 */

import type { Command } from "commander";
import { type CheckResult, type CheckStatus, type ChecksResponse, checkStatuses } from "../api/contract.js";
import { CvmError } from "../core/errors.js";
import { isImageReference, parseImageReference } from "../core/image-reference.js";
import { defaultSettings, type RuntimeChoice, runtimeChoices } from "../core/settings.js";
import { defaultDockerHost } from "../docker/engine-address.js";
import { type OnCheckProgress, worstStatus } from "../infra/check.js";
import { printJson } from "./output.js";
import { registryCredentials } from "./prompt.js";

interface DoctorOptions {
  json?: boolean;
  provider?: string;
  kubeconfig?: string;
  namespace?: string;
  runtime: string;
  dockerHost?: string;
  privileges?: string;
  capabilities?: string;
  image: string[];
  registryUser?: string;
  registryPasswordStdin?: boolean;
  supervisorImage?: string;
  trialTimeout?: number;
}

export const exitCodes: Record<CheckStatus, number> = { "not-applicable": 0, pass: 0, warn: 1, fail: 2 };

const marks: Record<CheckStatus, string> = { pass: "PASS", warn: "WARN", fail: "FAIL", "not-applicable": "N/A" };

/** A table for people: one row per check; evidence lines and the remedy continue under the evidence column. */
export function formatChecks(results: CheckResult[]): string {
  const headers = ["STATUS", "ID", "TITLE", "EVIDENCE"];
  const rows = results.map((r) => [marks[r.status], r.id, r.title]);
  const widths = headers.slice(0, 3).map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const indent = widths.reduce((sum, w) => sum + w + 2, 0);
  const lead = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i])).join("  ");
  const lines = [`${lead(headers.slice(0, 3))}  ${headers[3]}`];
  results.forEach((r, i) => {
    const [first, ...rest] = r.evidence.split("\n");
    lines.push(`${lead(rows[i])}  ${first}`);
    for (const line of rest) lines.push(`${" ".repeat(indent)}${line}`);
    if (r.remedy) lines.push(`${" ".repeat(indent)}remedy: ${r.remedy}`);
  });
  const worst = worstStatus(results);
  // pass, warn and fail always; checks that do not apply only when there are some.
  const counts = checkStatuses
    .map((s) => ({ s, n: results.filter((r) => r.status === s).length }))
    .filter(({ s, n }) => n > 0 || s !== "not-applicable")
    .map(({ s, n }) => `${n} ${s === "not-applicable" ? "not applicable" : s}`);
  lines.push(
    "",
    `${counts.join(", ")}: ${worst === "pass" ? "ready for CVMs" : worst === "warn" ? "CVMs can run; see the warnings" : "not ready for CVMs"}`,
  );
  return `${lines.join("\n")}\n`;
}

function runtimeOption(value: string): RuntimeChoice {
  if (!(runtimeChoices as readonly string[]).includes(value)) {
    throw new CvmError("BAD_REQUEST", `--runtime takes one of ${runtimeChoices.join(", ")}`);
  }
  return value as RuntimeChoice;
}

/** A long check's waits, on stderr, so a person sees what the doctor is waiting on. */
const onProgress: OnCheckProgress = (progress) => {
  if (progress.type === "note") process.stderr.write(`${progress.id}: ${progress.text}\n`);
};

export async function doctor(options: DoctorOptions): Promise<ChecksResponse> {
  const provider = options.provider ?? (options.kubeconfig || options.namespace ? "kubernetes" : "docker");
  if (provider !== "docker" && provider !== "kubernetes") {
    throw new CvmError("BAD_REQUEST", "--provider takes docker or kubernetes");
  }
  const mode = options.privileges ?? defaultSettings.supervisorPrivileges.mode;
  if (mode !== "privileged" && mode !== "capabilities") {
    throw new CvmError("BAD_REQUEST", "--privileges takes privileged or capabilities");
  }
  const capabilities =
    options.capabilities?.split(",").map((c) => c.trim()) ?? defaultSettings.supervisorPrivileges.capabilities;
  const timeout = options.trialTimeout;
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout > 0 && timeout <= 3600)) {
    throw new CvmError("BAD_REQUEST", "--trial-timeout takes whole seconds from 1 to 3600");
  }
  for (const image of options.image ?? []) {
    const parsed = parseImageReference(image);
    if (!isImageReference(parsed)) throw new CvmError("BAD_REQUEST", `--image ${image} ${parsed.problem}`);
  }
  // The credentials a CVM of those images would be created with, in the trial's Secret as in a CVM's.
  const credentials = await registryCredentials(options);
  // Interrupted, the trial Pod is deleted before the doctor exits.
  const interrupted = new AbortController();
  const onSignal = () => interrupted.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    // The checks bring the engine and Kubernetes clients: loaded only when the doctor runs.
    const { runInfrastructureChecks } = await import("../infra/index.js");
    const checks = await runInfrastructureChecks(
      {
        provider,
        settings: {
          ...defaultSettings,
          runtime: runtimeOption(options.runtime),
          supervisorPrivileges: { mode, capabilities },
        },
        dockerHost: options.dockerHost,
        kubeconfig: options.kubeconfig,
        namespace: options.namespace,
        trial: {
          images: options.image,
          credentials,
          podOptions: options.supervisorImage ? { supervisorImage: options.supervisorImage } : undefined,
          timeoutSeconds: options.trialTimeout,
          signal: interrupted.signal,
        },
      },
      onProgress,
    );
    if (interrupted.signal.aborted) {
      throw new CvmError("UNAVAILABLE", "Interrupted: the trial Pod was removed; run the doctor again");
    }
    return { checks, worst: worstStatus(checks) };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

export function register(program: Command): void {
  program
    .command("doctor")
    .description("check whether this machine or cluster can host CVMs (exit 0: all pass, 1: warnings, 2: failures)")
    .option("--json", "print the checks as JSON")
    .option(
      "--provider <provider>",
      "docker (this machine's engine) or kubernetes; kubernetes when --kubeconfig or --namespace is given",
    )
    .option("--kubeconfig <file>", "the cluster's kubeconfig (in-cluster config or ~/.kube/config when absent)")
    .option("--namespace <namespace>", "the namespace cvm creates environments in")
    .option("--runtime <runtime>", `the isolation runtime to check for: ${runtimeChoices.join(", ")}`, "auto")
    .option("--docker-host <host>", `the engine (default: DOCKER_HOST, else ${defaultDockerHost})`)
    .option("--privileges <mode>", "how the supervisor Pod is privileged: privileged or capabilities")
    .option("--capabilities <list>", "with --privileges capabilities: the comma-separated list")
    .option(
      "--image <ref>",
      "kubernetes: a CVM image the trial Pod asks the registry for from inside the cluster (repeatable)",
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option(
      "--registry-user <user>",
      "kubernetes: registry credentials for the first --image's registry, as a CVM of it gets them",
    )
    .option(
      "--registry-password-stdin",
      "read the registry password from standard input (or set CVM_REGISTRY_PASSWORD; else it is asked for)",
    )
    .option(
      "--supervisor-image <ref>",
      "kubernetes: the supervisor image CVM Pods run (default: CVM_SUPERVISOR_IMAGE, else the built-in name)",
    )
    .option("--trial-timeout <seconds>", "kubernetes: how long to wait on the trial Pod (default 120)", Number)
    .action(async (options: DoctorOptions) => {
      const response = await doctor(options);
      if (options.json) printJson(response);
      else process.stdout.write(formatChecks(response.checks));
      process.exitCode = exitCodes[response.worst];
    });
}
