import type { CheckStatus } from "../../../src/api/contract.js";
import type { DockerStatus, EnvironmentState, SystemdStatus } from "../../../src/core/environment.js";

/** Each state's color: green when usable, blue while working, grey at rest, red when broken. */
const stateTone: Record<EnvironmentState, string> = {
  queued: "work",
  pulling: "work",
  creating: "work",
  starting: "work",
  running: "ok",
  stopping: "work",
  stopped: "rest",
  failed: "bad",
  deleting: "work",
  deleted: "rest",
};

/** `past`: a state in the timeline, which no longer pulses while "working". */
export function StateBadge({ state, past }: { state: EnvironmentState; past?: boolean }) {
  const tone = stateTone[state] ?? "rest";
  return (
    <span className={`badge badge-${tone}`} data-state={past ? undefined : state}>
      {tone === "work" && !past && <span className="pulse" aria-hidden="true" />}
      {state}
    </span>
  );
}

export function KindBadge({ cvm }: { cvm: boolean }) {
  return cvm ? (
    <span className="badge badge-cvm" title="Container-based VM: systemd and Docker inside, unprivileged on the node">
      CVM
    </span>
  ) : (
    <span className="badge badge-rest">standard</span>
  );
}

const checkTone: Record<CheckStatus, string> = { pass: "ok", warn: "warn", fail: "bad", "not-applicable": "rest" };

export function CheckBadge({ status }: { status: CheckStatus }) {
  return (
    <span className={`badge badge-${checkTone[status]}`} data-status={status}>
      {status === "not-applicable" ? "not applicable" : status}
    </span>
  );
}

const systemdTone: Record<SystemdStatus, string> = {
  running: "ok",
  degraded: "warn",
  starting: "work",
  unavailable: "rest",
  unknown: "rest",
};

export function SystemdBadge({ status }: { status: SystemdStatus }) {
  return <span className={`badge badge-${systemdTone[status]}`}>{status}</span>;
}

const dockerTone: Record<DockerStatus, string> = {
  answering: "ok",
  "not-answering": "bad",
  absent: "rest",
  unknown: "rest",
};

export function DockerBadge({ status }: { status: DockerStatus }) {
  return <span className={`badge badge-${dockerTone[status]}`}>{status}</span>;
}
