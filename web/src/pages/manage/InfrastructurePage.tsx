/**
 * Manage > Admin > Infrastructure: the CVM toggle, the isolation runtime, the
 * devices CVMs get, how the supervisor is privileged, the size and process
 * limits, each member's quotas, what environments may reach on the network,
 * the warm pools (WarmPools.tsx), and the infrastructure checks behind them.
 * Turning CVMs on while a check fails takes a forced,
 * confirmed (and audited) save.
 */

import { type FormEvent, useEffect, useState } from "react";
import type { CheckResult, InfrastructureSettingsUpdate } from "../../../../src/api/contract.js";
import type {
  EnvironmentLimits,
  InfrastructureSettings,
  NetworkReach,
  RuntimeChoice,
  UserQuotas,
} from "../../../../src/core/settings.js";
import { networkReaches, runtimeChoices } from "../../../../src/core/settings.js";
import { ApiError, fieldErrors } from "../../api.js";
import { CheckBadge } from "../../components/badges.js";
import { ConfirmDialog } from "../../components/confirm-dialog.js";
import { ErrorState, InlineError, Loading } from "../../components/feedback.js";
import { Field } from "../../components/field.js";
import { PageHeader } from "../../components/shell.js";
import { updateInfrastructure, useInfrastructure, useInfrastructureChecks } from "../../queries/settings.js";
import "./infrastructure.css";
import { WarmPools } from "./WarmPools.js";

const runtimeText: Record<RuntimeChoice, string> = {
  auto: "Sysbox where the engine has it, otherwise the built-in user-namespace runtime.",
  sysbox: "Sysbox's own isolation (sysbox-runc must be registered with the engine).",
  userns: "Built in: root in the environment is an unprivileged uid range on the node.",
};

const deviceToggles: { key: "fuseDevice" | "tunDevice" | "lxcfs"; label: string; hint: string }[] = [
  {
    key: "fuseDevice",
    label: "FUSE (/dev/fuse)",
    hint: "sshfs, rclone mounts, fuse-overlayfs and rootless Podman. Mounts stay inside the environment.",
  },
  {
    key: "tunDevice",
    label: "TUN (/dev/net/tun)",
    hint: "VPN clients and userspace networking. Interfaces stay in the environment's own network.",
  },
  {
    key: "lxcfs",
    label: "Own /proc (LXCFS)",
    hint: "free, top, nproc and uptime show the CVM's own limits. Off: /proc is the kernel's whole, which rootless Podman and unshare --mount-proc need.",
  },
];

const reachText: Record<NetworkReach, string> = {
  owner: "Its owner's other environments, and the internet.",
  installation: "Every environment of this installation, and the internet.",
};

const quotaFields: { key: keyof UserQuotas; label: string; step: string }[] = [
  { key: "environments", label: "Environments", step: "1" },
  { key: "runningCpu", label: "CPUs running", step: "0.25" },
  { key: "runningMemoryGiB", label: "Memory running (GiB)", step: "0.25" },
  { key: "terminals", label: "Open terminals", step: "1" },
];

const limitFields: { key: Exclude<keyof EnvironmentLimits, "pids">; label: string }[] = [
  { key: "minCpu", label: "Min CPUs" },
  { key: "maxCpu", label: "Max CPUs" },
  { key: "minMemoryGiB", label: "Min memory (GiB)" },
  { key: "maxMemoryGiB", label: "Max memory (GiB)" },
  { key: "minDiskGiB", label: "Min disk (GiB)" },
  { key: "maxDiskGiB", label: "Max disk (GiB)" },
];

/** Evidence of more than a couple of lines (mount tables, one line per cgroup) folds to its first line. */
function Evidence({ text }: { text: string }) {
  const lines = text.split("\n");
  if (lines.length <= 2) return <>{text}</>;
  return (
    <details className="evidence">
      <summary>
        <span className="evidence-first">{lines[0]}</span>
        <span className="evidence-more">{lines.length - 1} more lines</span>
      </summary>
      {lines.slice(1).join("\n")}
    </details>
  );
}

function ChecksTable({ checks, done }: { checks: CheckResult[]; done: boolean }) {
  if (checks.length === 0 && done) return <p className="muted">No checks apply to this installation.</p>;
  return (
    <table className="table responsive" aria-label="Infrastructure checks">
      <thead>
        <tr>
          <th scope="col">Check</th>
          <th scope="col">Result</th>
          <th scope="col">Evidence</th>
          <th scope="col">Remedy</th>
        </tr>
      </thead>
      <tbody>
        {checks.map((check) => (
          <tr key={check.id} data-check={check.id}>
            <td data-label="Check">
              <strong>{check.title}</strong>
              <div className="muted mono small">{check.id}</div>
            </td>
            <td data-label="Result">
              <CheckBadge status={check.status} />
            </td>
            <td data-label="Evidence" className="mono small pre-wrap">
              <Evidence text={check.evidence} />
            </td>
            <td data-label="Remedy" className="small">
              {check.remedy ?? "—"}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export default function InfrastructurePage() {
  const settings = useInfrastructure();
  const checks = useInfrastructureChecks();
  const [draft, setDraft] = useState<InfrastructureSettings>();
  const [capabilities, setCapabilities] = useState("");
  const [allowedNetworks, setAllowedNetworks] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const [forcing, setForcing] = useState(false);

  useEffect(() => {
    if (settings.data) {
      setDraft(settings.data);
      setCapabilities(settings.data.supervisorPrivileges.capabilities.join(" "));
      setAllowedNetworks(settings.data.network.allowedNetworks.join(" "));
    }
  }, [settings.data]);

  if (settings.status === "loading" || (!draft && !settings.error)) return <Loading what="infrastructure settings" />;
  if (!draft) return <ErrorState title="Could not load the settings" error={settings.error} retry={settings.reload} />;

  const fields = fieldErrors(error);
  const checksDone = checks.worst !== undefined;
  const failing = checks.checks.filter((c) => c.status === "fail");
  const enabling = draft.cvmEnabled && !settings.data?.cvmEnabled;

  const save = async (force: boolean) => {
    setBusy(true);
    setError(undefined);
    setSaved(false);
    const update: InfrastructureSettingsUpdate = {
      cvmEnabled: draft.cvmEnabled,
      runtime: draft.runtime,
      fuseDevice: draft.fuseDevice,
      tunDevice: draft.tunDevice,
      lxcfs: draft.lxcfs,
      supervisorPrivileges: {
        mode: draft.supervisorPrivileges.mode,
        capabilities: capabilities.split(/[\s,]+/).filter(Boolean),
      },
      limits: draft.limits,
      publicPorts: draft.publicPorts,
      portsHost: draft.portsHost,
      idleStopMinutes: draft.idleStopMinutes,
      quotas: draft.quotas,
      network: { reach: draft.network.reach, allowedNetworks: allowedNetworks.split(/[\s,]+/).filter(Boolean) },
      ...(force ? { force: true } : {}),
    };
    try {
      settings.set(await updateInfrastructure(update));
      setSaved(true);
      setForcing(false);
    } catch (e) {
      setError(e);
      // Refused because checks fail: offer the forced, confirmed save.
      if (enabling && !force && e instanceof ApiError && !e.body.validations) setForcing(true);
    } finally {
      setBusy(false);
    }
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (enabling && failing.length > 0) setForcing(true);
    else void save(false);
  };

  return (
    <>
      <p className="breadcrumb">Manage › Admin › Infrastructure</p>
      <PageHeader
        title="Infrastructure"
        lead="What environments may be, and the checks that say whether this installation can host them."
      />
      <form className="card form form-wide" onSubmit={submit} aria-label="Infrastructure settings" noValidate>
        <h2>Container-based virtual machines</h2>
        <div className="field">
          <label className="switch">
            <input
              type="checkbox"
              role="switch"
              aria-checked={draft.cvmEnabled}
              checked={draft.cvmEnabled}
              onChange={(e) => {
                setSaved(false);
                setDraft({ ...draft, cvmEnabled: e.target.checked });
              }}
              aria-describedby="cvm-toggle-hint"
            />
            <span className="switch-track" aria-hidden="true" />
            Enable Container-Based Virtual Machines
          </label>
          <p className="hint" id="cvm-toggle-hint">
            Lets users create environments that run systemd and their own Docker, while root inside stays unprivileged
            on the node.
          </p>
          {fields.cvmEnabled && <p className="field-error">{fields.cvmEnabled}</p>}
        </div>

        <fieldset className="field">
          <legend>Isolation runtime</legend>
          {runtimeChoices.map((choice) => (
            <label key={choice} className="radio">
              <input
                type="radio"
                name="runtime"
                value={choice}
                checked={draft.runtime === choice}
                onChange={() => setDraft({ ...draft, runtime: choice })}
              />
              <span>
                <strong>{choice}</strong> <span className="muted">{runtimeText[choice]}</span>
              </span>
            </label>
          ))}
          {fields.runtime && <p className="field-error">{fields.runtime}</p>}
        </fieldset>

        <fieldset className="field">
          <legend>Devices in CVMs</legend>
          {deviceToggles.map(({ key, label, hint }) => (
            <div key={key} className="field">
              <label className="switch">
                <input
                  type="checkbox"
                  role="switch"
                  aria-checked={draft[key]}
                  checked={draft[key]}
                  onChange={(e) => {
                    setSaved(false);
                    setDraft({ ...draft, [key]: e.target.checked });
                  }}
                  aria-describedby={`${key}-hint`}
                />
                <span className="switch-track" aria-hidden="true" />
                {label}
              </label>
              <p className="hint" id={`${key}-hint`}>
                {hint} Applies to environments built or rebuilt after saving.
              </p>
              {fields[key] && <p className="field-error">{fields[key]}</p>}
            </div>
          ))}
        </fieldset>

        <fieldset className="field">
          <legend>Supervisor privileges</legend>
          <p className="hint" id="privileges-hint">
            Kubernetes only: how the supervisor container in each CVM's Pod runs. With the docker provider the
            supervisor runs inside cvm server, and this setting has no effect.
          </p>
          <label className="radio">
            <input
              type="radio"
              name="privileges"
              checked={draft.supervisorPrivileges.mode === "privileged"}
              onChange={() =>
                setDraft({ ...draft, supervisorPrivileges: { ...draft.supervisorPrivileges, mode: "privileged" } })
              }
            />
            <span>
              <strong>privileged</strong> <span className="muted">The supervising container runs privileged.</span>
            </span>
          </label>
          <label className="radio">
            <input
              type="radio"
              name="privileges"
              checked={draft.supervisorPrivileges.mode === "capabilities"}
              onChange={() =>
                setDraft({ ...draft, supervisorPrivileges: { ...draft.supervisorPrivileges, mode: "capabilities" } })
              }
            />
            <span>
              <strong>capabilities</strong>{" "}
              <span className="muted">Only the listed capabilities, where privileged is forbidden.</span>
            </span>
          </label>
          {draft.supervisorPrivileges.mode === "capabilities" && (
            <Field
              id="capabilities"
              label="Capabilities"
              error={fields["supervisorPrivileges.capabilities"]}
              hint="Separated by spaces, such as SYS_ADMIN NET_ADMIN."
            >
              {(props) => (
                <textarea
                  {...props}
                  className="mono"
                  rows={3}
                  value={capabilities}
                  onChange={(e) => setCapabilities(e.target.value)}
                />
              )}
            </Field>
          )}
        </fieldset>

        <fieldset className="field">
          <legend>Environment size limits</legend>
          <div className="form-row form-row-3">
            {limitFields.map(({ key, label }) => (
              <Field key={key} id={`limit-${key}`} label={label} error={fields[`limits.${key}`]}>
                {(props) => (
                  <input
                    {...props}
                    type="number"
                    step="0.25"
                    value={Number.isNaN(draft.limits[key]) ? "" : draft.limits[key]}
                    onChange={(e) => setDraft({ ...draft, limits: { ...draft.limits, [key]: e.target.valueAsNumber } })}
                  />
                )}
              </Field>
            ))}
            <Field
              id="limit-pids"
              label="Processes per environment"
              error={fields["limits.pids"]}
              hint="0 sizes it to the node: an eighth of what the node allows."
            >
              {(props) => (
                <input
                  {...props}
                  type="number"
                  step="1"
                  min="0"
                  value={Number.isNaN(draft.limits.pids) ? "" : draft.limits.pids}
                  onChange={(e) => setDraft({ ...draft, limits: { ...draft.limits, pids: e.target.valueAsNumber } })}
                />
              )}
            </Field>
          </div>
        </fieldset>

        <fieldset className="field">
          <legend>Workspaces</legend>
          <label className="checkbox">
            <input
              type="checkbox"
              checked={draft.publicPorts}
              onChange={(e) => setDraft({ ...draft, publicPorts: e.target.checked })}
            />
            Owners may share a port publicly (with anyone, signed in or not)
          </label>
          {fields.publicPorts && <p className="field-error">{fields.publicPorts}</p>}
          <div className="form-row">
            <Field id="ports-host" label="Wildcard host for ports" error={fields.portsHost}>
              {(props) => (
                <input
                  {...props}
                  placeholder="cvm.example.com (DNS *.cvm.example.com reaches this server)"
                  value={draft.portsHost}
                  onChange={(e) => setDraft({ ...draft, portsHost: e.target.value.trim() })}
                />
              )}
            </Field>
            <Field id="idle-stop" label="Idle stop (minutes without use; 0: never)" error={fields.idleStopMinutes}>
              {(props) => (
                <input
                  {...props}
                  type="number"
                  min={0}
                  step={1}
                  value={Number.isNaN(draft.idleStopMinutes) ? "" : draft.idleStopMinutes}
                  onChange={(e) => setDraft({ ...draft, idleStopMinutes: e.target.valueAsNumber })}
                />
              )}
            </Field>
          </div>
        </fieldset>

        <fieldset className="field">
          <legend>Quotas per member</legend>
          <p className="hint">
            What each member may hold at once; 0 is no quota. Admins and managers are not held to them.
          </p>
          <div className="form-row form-row-3">
            {quotaFields.map(({ key, label, step }) => (
              <Field key={key} id={`quota-${key}`} label={label} error={fields[`quotas.${key}`]}>
                {(props) => (
                  <input
                    {...props}
                    type="number"
                    step={step}
                    min="0"
                    value={Number.isNaN(draft.quotas[key]) ? "" : draft.quotas[key]}
                    onChange={(e) => setDraft({ ...draft, quotas: { ...draft.quotas, [key]: e.target.valueAsNumber } })}
                  />
                )}
              </Field>
            ))}
          </div>
        </fieldset>

        <fieldset className="field">
          <legend>Network: what an environment may connect to</legend>
          {networkReaches.map((reach) => (
            <label key={reach} className="radio">
              <input
                type="radio"
                name="network-reach"
                value={reach}
                checked={draft.network.reach === reach}
                onChange={() => setDraft({ ...draft, network: { ...draft.network, reach } })}
              />
              <span>
                <strong>{reach}</strong> <span className="muted">{reachText[reach]}</span>
              </span>
            </label>
          ))}
          <Field
            id="allowed-networks"
            label="Also allowed"
            error={fields["network.allowedNetworks"]}
            hint="Addresses or networks on private ranges or of the node itself, such as 10.1.2.3 or 10.1.0.0/16, separated by spaces. Everything else private stays closed."
          >
            {(props) => (
              <textarea
                {...props}
                className="mono"
                rows={2}
                value={allowedNetworks}
                onChange={(e) => setAllowedNetworks(e.target.value)}
              />
            )}
          </Field>
        </fieldset>

        {!forcing && <InlineError error={error} />}
        {saved && (
          <p className="notice notice-ok" role="status">
            Settings saved.
          </p>
        )}
        <div className="actions">
          <button type="submit" className="button button-primary" disabled={busy}>
            {busy ? "Saving…" : "Save settings"}
          </button>
        </div>
      </form>

      <WarmPools />

      <section className="card card-flush" aria-labelledby="checks-title">
        <div className="card-head">
          <h2 id="checks-title">Infrastructure checks {checks.worst && <CheckBadge status={checks.worst} />}</h2>
          <button type="button" className="button button-small" onClick={checks.reload} disabled={!checksDone}>
            Run again
          </button>
        </div>
        {!checksDone && !checks.error && (
          <div className="feedback checks-running" role="status" aria-live="polite" data-testid="check-running">
            <span className="spinner" aria-hidden="true" />
            {checks.running
              ? `Checking ${checks.running.title}… (${checks.checks.length} done)${checks.running.note ? `: ${checks.running.note}` : ""}`
              : "Starting the checks…"}
          </div>
        )}
        {checks.error ? (
          <ErrorState title="Could not run the checks" error={checks.error} retry={checks.reload} />
        ) : (
          (checks.checks.length > 0 || checksDone) && <ChecksTable checks={checks.checks} done={checksDone} />
        )}
      </section>

      <ConfirmDialog
        open={forcing}
        title="Enable CVMs although checks fail?"
        confirmLabel="Enable anyway"
        danger
        busy={busy}
        onCancel={() => setForcing(false)}
        onConfirm={() => void save(true)}
      >
        {failing.length > 0 ? (
          <>
            <p>These checks fail, so CVMs may not start or may be less isolated than promised:</p>
            <ul>
              {failing.map((check) => (
                <li key={check.id}>
                  <strong>{check.title}</strong>: {check.evidence}
                </li>
              ))}
            </ul>
          </>
        ) : (
          <InlineError error={error} />
        )}
        <p>The audit log records that you forced this.</p>
      </ConfirmDialog>
    </>
  );
}
