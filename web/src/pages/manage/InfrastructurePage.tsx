/**
 * Manage > Admin > Infrastructure: the CVM toggle, the isolation runtime, how
 * the supervisor is privileged, the size limits, and the infrastructure
 * checks behind them. Turning CVMs on while a check fails takes a forced,
 * confirmed (and audited) save.
 */

import { type FormEvent, useEffect, useState } from "react";
import type { CheckResult, InfrastructureSettingsUpdate } from "../../../../src/api/contract.js";
import type { EnvironmentLimits, InfrastructureSettings, RuntimeChoice } from "../../../../src/core/settings.js";
import { runtimeChoices } from "../../../../src/core/settings.js";
import { ApiError, fieldErrors } from "../../api.js";
import { CheckBadge } from "../../components/badges.js";
import { ConfirmDialog } from "../../components/confirm-dialog.js";
import { ErrorState, InlineError, Loading } from "../../components/feedback.js";
import { Field } from "../../components/field.js";
import { PageHeader } from "../../components/shell.js";
import { updateInfrastructure, useInfrastructure, useInfrastructureChecks } from "../../queries/settings.js";

const runtimeText: Record<RuntimeChoice, string> = {
  auto: "Sysbox where the engine has it, otherwise the built-in user-namespace runtime.",
  sysbox: "Sysbox's own isolation (sysbox-runc must be registered with the engine).",
  userns: "Built in: root in the environment is an unprivileged uid range on the node.",
};

const limitFields: { key: keyof EnvironmentLimits; label: string }[] = [
  { key: "minCpu", label: "Min CPUs" },
  { key: "maxCpu", label: "Max CPUs" },
  { key: "minMemoryGiB", label: "Min memory (GiB)" },
  { key: "maxMemoryGiB", label: "Max memory (GiB)" },
  { key: "minDiskGiB", label: "Min disk (GiB)" },
  { key: "maxDiskGiB", label: "Max disk (GiB)" },
];

function ChecksTable({ checks }: { checks: CheckResult[] }) {
  if (checks.length === 0) return <p className="muted">No checks apply to this installation.</p>;
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
              {check.evidence}
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
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const [forcing, setForcing] = useState(false);

  useEffect(() => {
    if (settings.data) {
      setDraft(settings.data);
      setCapabilities(settings.data.supervisorPrivileges.capabilities.join(" "));
    }
  }, [settings.data]);

  if (settings.status === "loading" || (!draft && !settings.error)) return <Loading what="infrastructure settings" />;
  if (!draft) return <ErrorState title="Could not load the settings" error={settings.error} retry={settings.reload} />;

  const fields = fieldErrors(error);
  const failing = (checks.data?.checks ?? []).filter((c) => c.status === "fail");
  const enabling = draft.cvmEnabled && !settings.data?.cvmEnabled;

  const save = async (force: boolean) => {
    setBusy(true);
    setError(undefined);
    setSaved(false);
    const update: InfrastructureSettingsUpdate = {
      cvmEnabled: draft.cvmEnabled,
      runtime: draft.runtime,
      supervisorPrivileges: {
        mode: draft.supervisorPrivileges.mode,
        capabilities: capabilities.split(/[\s,]+/).filter(Boolean),
      },
      limits: draft.limits,
      publicPorts: draft.publicPorts,
      portsHost: draft.portsHost,
      idleStopMinutes: draft.idleStopMinutes,
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
      <PageHeader
        title="Infrastructure"
        lead="Manage › Admin › Infrastructure. What environments may be, and the checks that say whether this installation can host them."
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
          <legend>Supervisor privileges</legend>
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

      <section className="card card-flush" aria-labelledby="checks-title">
        <div className="card-head">
          <h2 id="checks-title">Infrastructure checks {checks.data && <CheckBadge status={checks.data.worst} />}</h2>
          <button
            type="button"
            className="button button-small"
            onClick={checks.reload}
            disabled={checks.status === "loading"}
          >
            Run again
          </button>
        </div>
        {checks.data ? (
          <ChecksTable checks={checks.data.checks} />
        ) : checks.error ? (
          <ErrorState title="Could not run the checks" error={checks.error} retry={checks.reload} />
        ) : (
          <Loading what="checks" />
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
