/**
 * One environment: what it is, where it is in its life, whether systemd and
 * Docker are up inside, how to connect, what it uses, its ports and idle
 * timer (Workspace.tsx), every build's log, and what can be done to it.
 */

import { useState } from "react";
import type { Environment, EnvironmentAction } from "../../../../src/core/environment.js";
import { assertActionAllowed } from "../../../../src/core/environment.js";
import { ApiError, client } from "../../api.js";
import { DockerBadge, KindBadge, StateBadge, SystemdBadge } from "../../components/badges.js";
import { ConfirmDialog } from "../../components/confirm-dialog.js";
import { EmptyState, ErrorState, InlineError, Loading } from "../../components/feedback.js";
import { LiveIndicator } from "../../components/live-indicator.js";
import { PageHeader } from "../../components/shell.js";
import { dateTime, resources, time } from "../../format.js";
import { environmentActions, useEnvironment } from "../../queries/environments.js";
import { useResource } from "../../queries/resource.js";
import { Link, navigate } from "../../router.js";
import { useUser } from "../../session.js";
import { BuildLog } from "./BuildLog.js";
import { ConnectPanel, IdlePanel, PortsPanel, UsagePanel } from "./Workspace.js";

/** Every build of the environment, newest first, to pick a log from. */
function BuildPicker({
  environment,
  value,
  onChange,
}: {
  environment: Environment;
  value?: string;
  onChange: (buildId?: string) => void;
}) {
  const builds = useResource(() => client.builds(environment.id), [environment.id, environment.buildId]);
  const items = [...(builds.data?.items ?? [])].sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  if (items.length < 2) return null;
  return (
    <label className="build-picker">
      Build{" "}
      <select
        value={value ?? ""}
        onChange={(event) => onChange(event.target.value || undefined)}
        aria-label="Which build's log"
        data-testid="build-picker"
      >
        <option value="">The latest</option>
        {items.map((build) => (
          <option key={build.id} value={build.id}>
            {dateTime(build.startedAt)}
            {build.outcome ? ` (${build.outcome})` : " (in progress)"}
          </option>
        ))}
      </select>
    </label>
  );
}

function allowed(action: EnvironmentAction, environment: Environment): boolean {
  try {
    assertActionAllowed(action, environment.state);
    return true;
  } catch {
    return false;
  }
}

function systemdSentence(e: Environment): string {
  switch (e.systemd) {
    case "running":
      return "systemd runs as PID 1 and the system is up.";
    case "degraded":
      return `systemd runs, but units failed: ${e.failedUnits.join(", ") || "see systemctl --failed"}.`;
    case "starting":
      return "systemd is bringing the system up.";
    case "unavailable":
      return e.cvm
        ? "The image has no /sbin/init, so the environment runs under a minimal init that reaps children."
        : "Standard environments run without systemd; create a Container-based VM for systemd.";
    case "unknown":
      return e.state === "running" ? "Not reported yet." : "Known once the environment is running.";
  }
}

function dockerSentence(e: Environment): string {
  switch (e.docker) {
    case "answering":
      return "The Docker daemon inside answers: docker run works in the terminal.";
    case "not-answering":
      return "Docker is installed but its daemon does not answer.";
    case "absent":
      return e.cvm ? "The image has no Docker." : "Standard environments have no Docker of their own.";
    case "unknown":
      return e.state === "running" ? "Not reported yet." : "Known once the environment is running.";
  }
}

const confirmText: Record<Exclude<EnvironmentAction, "start">, { title: string; label: string; body: string }> = {
  stop: {
    title: "Stop",
    label: "Stop",
    body: "Running processes end and open terminals close. The home volume is kept.",
  },
  rebuild: {
    title: "Rebuild",
    label: "Rebuild",
    body: "The container is recreated from the image (pulled again). The home volume is kept.",
  },
  delete: {
    title: "Delete",
    label: "Delete",
    body: "The environment and its container are removed. This cannot be undone.",
  },
};

export function EnvironmentPage({ params }: { params: Record<string, string> }) {
  const ref = params.ref;
  const live = useEnvironment(ref);
  const [confirming, setConfirming] = useState<Exclude<EnvironmentAction, "start">>();
  const [keep, setKeep] = useState(false);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>();
  const [shownBuild, setShownBuild] = useState<string>();
  const user = useUser();

  if (live.gone) {
    return (
      <EmptyState title="This environment was deleted">
        <Link to="/environments" className="button">
          Back to environments
        </Link>
      </EmptyState>
    );
  }
  if (!live.environment) {
    if (live.error instanceof ApiError && live.error.status === 404) {
      return (
        <EmptyState title="Environment not found">
          <p>It does not exist, or it is not yours.</p>
          <Link to="/environments" className="button">
            Back to environments
          </Link>
        </EmptyState>
      );
    }
    return live.error ? (
      <ErrorState title="Could not load the environment" error={live.error} retry={() => window.location.reload()} />
    ) : (
      <Loading what="environment" />
    );
  }
  const e = live.environment;

  const run = async (action: EnvironmentAction) => {
    setBusy(true);
    setActionError(undefined);
    try {
      if (action === "start") live.accept(await environmentActions.start(e.id));
      if (action === "stop") live.accept(await environmentActions.stop(e.id));
      if (action === "rebuild") live.accept(await environmentActions.rebuild(e.id, keep));
      if (action === "delete") {
        await environmentActions.remove(e.id, keep);
        navigate("/environments");
        return;
      }
      setConfirming(undefined);
    } catch (error) {
      setActionError(error);
    } finally {
      setBusy(false);
    }
  };

  const ask = (action: Exclude<EnvironmentAction, "start">) => {
    setKeep(false);
    setActionError(undefined);
    setConfirming(action);
  };

  return (
    <>
      <p className="breadcrumb">
        <Link to="/environments">Environments</Link> / {e.name}
      </p>
      <PageHeader
        title={
          <span className="title-with-badges">
            {e.name} <StateBadge state={e.state} /> <KindBadge cvm={e.cvm} />
          </span>
        }
        lead={e.stateReason}
      >
        <LiveIndicator status={live.live} />
        {e.state === "running" && (
          <Link to={`/environments/${e.id}/terminal`} className="button button-primary">
            Open terminal
          </Link>
        )}
        <button
          type="button"
          className="button"
          disabled={busy || !allowed("start", e)}
          onClick={() => void run("start")}
        >
          Start
        </button>
        <button type="button" className="button" disabled={busy || !allowed("stop", e)} onClick={() => ask("stop")}>
          Stop
        </button>
        <button
          type="button"
          className="button"
          disabled={busy || !allowed("rebuild", e)}
          onClick={() => ask("rebuild")}
        >
          Rebuild
        </button>
        <button
          type="button"
          className="button button-danger-outline"
          disabled={busy || !allowed("delete", e)}
          onClick={() => ask("delete")}
        >
          Delete
        </button>
      </PageHeader>
      {!confirming && <InlineError error={actionError} />}

      <div className="grid">
        <section className="card" aria-labelledby="overview-title">
          <h2 id="overview-title">Overview</h2>
          <dl className="facts">
            <dt>Image</dt>
            <dd className="mono">{e.image}</dd>
            <dt>Kind</dt>
            <dd>{e.cvm ? "Container-based VM" : "Standard"}</dd>
            <dt>Isolation</dt>
            <dd>{e.runtime === "none" ? "Plain container" : e.runtime}</dd>
            <dt>Resources</dt>
            <dd>{resources(e)}</dd>
            <dt>Owner</dt>
            <dd>{e.ownerEmail}</dd>
            <dt>Created</dt>
            <dd>{dateTime(e.createdAt)}</dd>
          </dl>
        </section>

        <section className="card" aria-labelledby="health-title">
          <h2 id="health-title">Inside</h2>
          <div className="health">
            <div className="health-row" data-testid="systemd-status">
              <span className="health-name">systemd</span>
              <SystemdBadge status={e.systemd} />
              <p>{systemdSentence(e)}</p>
            </div>
            <div className="health-row" data-testid="docker-status">
              <span className="health-name">Docker</span>
              <DockerBadge status={e.docker} />
              <p>{dockerSentence(e)}</p>
            </div>
          </div>
        </section>

        <section className="card" aria-labelledby="timeline-title">
          <h2 id="timeline-title">Timeline</h2>
          <ol className="timeline" data-testid="timeline">
            {e.timeline.map((change) => (
              <li key={`${change.at}-${change.state}`}>
                <time dateTime={change.at} title={dateTime(change.at)}>
                  {time(change.at)}
                </time>
                <StateBadge state={change.state} past />
                {change.reason && <span className="timeline-reason">{change.reason}</span>}
              </li>
            ))}
          </ol>
        </section>
      </div>

      <div className="grid">
        <ConnectPanel environment={e} />
        <UsagePanel environment={e} />
        <IdlePanel environment={e} />
      </div>
      <PortsPanel environment={e} userId={user.id} />

      <section className="card" aria-labelledby="log-title">
        <h2 id="log-title">Build log</h2>
        <BuildPicker environment={e} value={shownBuild} onChange={setShownBuild} />
        <BuildLog environmentRef={e.id} buildId={shownBuild ?? e.buildId} />
      </section>

      {confirming && (
        <ConfirmDialog
          open
          title={`${confirmText[confirming].title} ${e.name}?`}
          confirmLabel={confirmText[confirming].label}
          danger={confirming !== "rebuild"}
          busy={busy}
          onCancel={() => setConfirming(undefined)}
          onConfirm={() => void run(confirming)}
        >
          <p>{confirmText[confirming].body}</p>
          {confirming === "rebuild" && e.cvm && (
            <label className="checkbox">
              <input type="checkbox" checked={keep} onChange={(event) => setKeep(event.target.checked)} />
              Keep the inner Docker's images and containers
            </label>
          )}
          {confirming === "delete" && (
            <label className="checkbox">
              <input type="checkbox" checked={keep} onChange={(event) => setKeep(event.target.checked)} />
              Keep the home volume
            </label>
          )}
          <InlineError error={actionError} />
        </ConfirmDialog>
      )}
    </>
  );
}
