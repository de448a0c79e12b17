/**
 * When a CVM is ready, and what it reports: systemd's own verdict
 * (`systemctl is-system-running --wait`, one exec once its bus socket exists),
 * the failed units when degraded, and whether the inner Docker answers.
 * Polling is cheap and tight: a stat from the node's side until systemd's
 * private socket appears, then a single exec that returns when boot is done.
 *
 * Docker answers when dockerd runs and answers its socket, or when dockerd is
 * not running and systemd listens on docker.socket for it (socket activation:
 * the first call starts dockerd, as on a Debian VM set up so). The socket is
 * then not pinged: a ping would start the daemon an idle CVM goes without.
 */

import { lstat } from "node:fs/promises";
import { request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import type { DockerStatus, SystemdStatus } from "../core/environment.js";
import { CvmError } from "../core/errors.js";

export interface SystemdReport {
  systemd: SystemdStatus;
  failedUnits: string[];
  docker: DockerStatus;
  /** Docker answers through systemd's socket: dockerd is not running yet and starts on the first call. */
  dockerOnDemand: boolean;
}

/** `systemctl is-system-running` words → what the API says. */
const systemStates: Record<string, SystemdStatus> = {
  initializing: "starting",
  starting: "starting",
  running: "running",
  degraded: "degraded",
  maintenance: "degraded",
  stopping: "unknown",
  offline: "unavailable",
  unknown: "unknown",
};

export function systemdStatusOf(word: string): SystemdStatus {
  return systemStates[word.trim()] ?? "unknown";
}

/**
 * One shell run inside: state (waiting for boot when asked), failed units,
 * Docker enabled (its service, or its socket), dockerd's unit state and
 * whether systemd listens on docker.socket.
 */
export function reportScript(wait: boolean, timeoutSeconds: number): string {
  const state = wait
    ? `timeout ${timeoutSeconds} systemctl is-system-running --wait 2>/dev/null`
    : "systemctl is-system-running 2>/dev/null";
  // Each systemctl run is a few ms after the boot, on the path to ready: the failed units are asked
  // for only when there are some, and Docker's units in one run.
  return [`state=$(${state})`, 'echo "state=$state"', failedLines, dockerLines].join("\n");
}

/** The failed units, asked for when systemd said degraded; shared with the warm pool's claim (supervisor/warm-pool.ts). */
export const failedLines = [
  'if [ "$state" = degraded ]; then',
  '  systemctl list-units --state=failed --plain --no-legend --no-pager 2>/dev/null | while read -r unit rest; do echo "failed=$unit"; done',
  "fi",
].join("\n");

/**
 * The report script's Docker lines, shared with the warm pool's claim: one
 * systemctl run for both units (no awk: the image is the user's). Lines
 * systemctl did not give stay unknown (parseReport). In a subshell, so the
 * claim script keeps its own variables.
 */
export const dockerLines = [
  "(systemctl show -p Id,ActiveState,UnitFileState docker.service docker.socket 2>/dev/null | while IFS== read -r key value; do",
  '  case "$key" in',
  "    Id) unit=$value ;;",
  '    UnitFileState) [ "$value" = enabled ] && echo "docker=enabled" ;;',
  '    ActiveState) case "$unit" in docker.service) echo "dockerd=$value" ;; docker.socket) echo "dockersocket=$value" ;; esac ;;',
  "  esac",
  "done)",
].join("\n");

export interface ScriptReport {
  state: string;
  failedUnits: string[];
  dockerEnabled: boolean;
  /** docker.service's ActiveState word (active, activating, inactive, failed...). */
  dockerd: string;
  dockerSocketActive: boolean;
}

export function parseReport(output: string): ScriptReport {
  const report: ScriptReport = {
    state: "unknown",
    failedUnits: [],
    dockerEnabled: false,
    dockerd: "unknown",
    dockerSocketActive: false,
  };
  for (const line of output.split("\n")) {
    const [key, ...rest] = line.trim().split("=");
    const value = rest.join("=");
    if (key === "state") report.state = value || "unknown";
    if (key === "failed" && value) report.failedUnits.push(value);
    if (key === "docker" && value === "enabled") report.dockerEnabled = true;
    if (key === "dockerd" && value) report.dockerd = value;
    if (key === "dockersocket") report.dockerSocketActive = value === "active";
  }
  return report;
}

/** Runs a command in the container and collects its output (stdout and stderr together). */
export async function execCollect(
  container: Dockerode.Container,
  command: string[],
): Promise<{ exitCode: number; output: string }> {
  const exec = await container.exec({ Cmd: command, AttachStdout: true, AttachStderr: true, User: "0" });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.on("error", reject);
  });
  let info = await exec.inspect();
  for (let i = 0; info.Running && i < 100; i++) {
    await sleep(10);
    info = await exec.inspect();
  }
  return { exitCode: info.ExitCode ?? -1, output: demux(Buffer.concat(chunks)) };
}

/** The engine's multiplexed stream (8-byte frame headers) as plain text. */
export function demux(raw: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + 8 <= raw.length) {
    const size = raw.readUInt32BE(at + 4);
    parts.push(raw.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return Buffer.concat(parts).toString("utf8");
}

/**
 * A path inside the container, reached from the node through /proc/PID/root,
 * with no component a symlink: the CVM's root controls those, and a link
 * would resolve against the node's root.
 */
async function lstatInside(pid: number, path: string): Promise<import("node:fs").Stats | undefined> {
  let current = `/proc/${pid}/root`;
  const parts = path.split("/").filter(Boolean);
  let info: import("node:fs").Stats | undefined;
  for (const part of parts) {
    current = `${current}/${part}`;
    info = await lstat(current).catch(() => undefined);
    if (!info || info.isSymbolicLink()) return undefined;
  }
  return info;
}

/** Boots waiting for their bus in this process now. */
let busWaiters = 0;

/** Waits until systemd's private bus socket exists (so systemctl can talk to it) or init is gone. */
export async function waitForSystemdBus(pid: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  busWaiters += 1;
  try {
    // A look costs little beside one boot, and every ms of the last wait is a ms more to ready. Beside
    // many boots at once it does not: twenty looking every 10 ms took a twentieth of the CPU they shared.
    for (let wait = 2; Date.now() < deadline; wait = Math.min(wait * 2, Math.min(10 * busWaiters, 100))) {
      signal?.throwIfAborted();
      const socket = await lstatInside(pid, "/run/systemd/private");
      if (socket?.isSocket()) return true;
      if (!(await lstat(`/proc/${pid}`).catch(() => undefined))) return false;
      await sleep(wait);
    }
    return false;
  } finally {
    busWaiters -= 1;
  }
}

/** GET /_ping on the inner dockerd's socket, from the node's side, with a short timeout. */
export async function pingInnerDocker(pid: number): Promise<boolean> {
  const socket = await lstatInside(pid, "/run/docker.sock");
  if (!socket?.isSocket()) return false;
  return new Promise((resolve) => {
    const req = request({ socketPath: `/proc/${pid}/root/run/docker.sock`, path: "/_ping", timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/** dockerd on demand: not running (nor starting, nor failed) while systemd listens on its socket. */
export function dockerOnDemand(report: ScriptReport): boolean {
  return report.dockerEnabled && report.dockerSocketActive && ["inactive", "unknown"].includes(report.dockerd);
}

/** What the report says of Docker: on demand answers without a ping; else dockerd is pinged (for up to waitMs). */
export async function dockerStatus(pid: number, report: ScriptReport, waitMs: number): Promise<DockerStatus> {
  if (!report.dockerEnabled) return "absent";
  if (dockerOnDemand(report)) return "answering";
  if (report.dockerd === "failed") return "not-answering";
  const deadline = Date.now() + waitMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    if (await pingInnerDocker(pid)) return "answering";
    if (Date.now() >= deadline) return "not-answering";
    await sleep(wait);
  }
}

/** Asks systemd inside; with `wait`, returns only once boot has finished (or the timeout passed). */
export async function systemdReport(
  container: Dockerode.Container,
  pid: number,
  options: { wait: boolean; timeoutSeconds: number },
): Promise<SystemdReport> {
  const { exitCode, output } = await execCollect(container, [
    "/bin/sh",
    "-c",
    reportScript(options.wait, options.timeoutSeconds),
  ]);
  if (exitCode === 126 || exitCode === 127) {
    throw new CvmError("INTERNAL", "Could not ask systemd for its state: the image has no /bin/sh", {
      detail: output,
    });
  }
  const report = parseReport(output);
  return {
    systemd: systemdStatusOf(report.state),
    failedUnits: report.failedUnits,
    docker: await dockerStatus(pid, report, options.wait ? 5000 : 0),
    dockerOnDemand: dockerOnDemand(report),
  };
}
