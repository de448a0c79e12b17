/**
 * One environment: what it is, where it is in its life, whether systemd and
 * Docker are up inside, how to connect, what it uses, its ports and idle
 * timer (Workspace.tsx), every build's log as it grows, and what can be done
 * to it. While it builds, its steps and their times; when it failed, why
 * (once), what starting it again will do, and what to change instead.
 */

import { useEffect, useState } from "react";
import type { Environment, EnvironmentAction } from "../../../../src/core/environment.js";
import { actionAllowed, buildingStates } from "../../../../src/core/environment.js";
import { isImageReference, parseImageReference } from "../../../../src/core/image-reference.js";
import { ApiError, client, fieldErrors, invalidFields } from "../../api.js";
import { DockerBadge, KindBadge, StateBadge, SystemdBadge } from "../../components/badges.js";
import { ConfirmDialog } from "../../components/confirm-dialog.js";
import { EmptyState, ErrorState, InlineError, Loading } from "../../components/feedback.js";
import { Field } from "../../components/field.js";
import { ImageName } from "../../components/image-name.js";
import { LiveIndicator } from "../../components/live-indicator.js";
import { PageHeader } from "../../components/shell.js";
import { dateTime, duration, resources, time } from "../../format.js";
import { environmentActions, useEnvironment } from "../../queries/environments.js";
import { useResource } from "../../queries/resource.js";
import { Link, navigate } from "../../router.js";
import { useUser } from "../../session.js";
import { BuildLog } from "./BuildLog.js";
import { BuildProgress } from "./BuildProgress.js";
import { buildSteps, currentBuild, timeInStates } from "./build-steps.js";
import "./environment.css";
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

const allowed = (action: EnvironmentAction, environment: Environment) => actionAllowed(action, environment.state);

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

type Confirmed = Exclude<EnvironmentAction, "start"> | "start-again";

const confirmText: Record<Confirmed, { title: string; label: string; body: string }> = {
  "start-again": {
    title: "Start again",
    label: "Start again",
    body: "Starting runs the same build with the same image: it fails the same way unless its cause has passed (a registry that was down, a full disk). To change the image, rebuild from another one instead.",
  },
  stop: {
    title: "Stop",
    label: "Stop",
    body: "Running processes end and open terminals close. The home volume is kept.",
  },
  rebuild: {
    title: "Rebuild",
    label: "Rebuild",
    body: "The container is recreated from the image (pulled again), or from another image given here. The home volume is kept.",
  },
  delete: {
    title: "Delete",
    label: "Delete",
    body: "The environment and its container are removed. This cannot be undone.",
  },
};

/** The time now, ticking while `ticking` (a build's times count up), still otherwise. */
function useNow(ticking: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    setNow(Date.now());
    if (!ticking) return;
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [ticking]);
  return now;
}

/** Why a failed environment failed, once, and the ways on from here. */
function FailurePanel({ environment, onRebuild }: { environment: Environment; onRebuild: () => void }) {
  const failedStep = buildSteps(environment, Date.now()).find((step) => step.status === "failed");
  const builtOnce = currentBuild(environment.timeline).length > 0;
  return (
    <section className="card failure" role="alert" aria-labelledby="failure-title" data-testid="failure">
      <h2 id="failure-title">
        {failedStep ? `The build failed at “${failedStep.label}”` : builtOnce ? "The build failed" : "It failed"}
      </h2>
      {environment.stateReason && <p className="failure-reason">{environment.stateReason}</p>}
      <p>
        Start runs the same build again with the same image, so it fails the same way unless the cause has passed. To
        change what it is built from, rebuild it from another image (the home volume is kept), or delete it.
      </p>
      <div className="actions">
        <button type="button" className="button button-primary" onClick={onRebuild}>
          Rebuild from another image…
        </button>
      </div>
    </section>
  );
}

export function EnvironmentPage({ params }: { params: Record<string, string> }) {
  const ref = params.ref;
  const live = useEnvironment(ref);
  const [confirming, setConfirming] = useState<Confirmed>();
  const [keep, setKeep] = useState(false);
  const [image, setImage] = useState("");
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>();
  const [shownBuild, setShownBuild] = useState<string>();
  const user = useUser();
  const now = useNow(Boolean(live.environment && buildingStates.includes(live.environment.state)));

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

  const imageChange = image.trim() && image.trim() !== e.image ? image.trim() : undefined;
  const imageProblem = (() => {
    if (!imageChange) return undefined;
    const parsed = parseImageReference(imageChange);
    return isImageReference(parsed) ? undefined : parsed.problem;
  })();

  const run = async (action: EnvironmentAction) => {
    if (action === "rebuild" && imageProblem) return;
    setBusy(true);
    setActionError(undefined);
    try {
      if (action === "start") live.accept(await environmentActions.start(e.id));
      if (action === "stop") live.accept(await environmentActions.stop(e.id));
      if (action === "rebuild") live.accept(await environmentActions.rebuild(e.id, keep, imageChange));
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

  const ask = (action: Confirmed) => {
    setKeep(false);
    setImage(e.image);
    setActionError(undefined);
    setConfirming(action);
  };
  const failed = e.state === "failed";
  const durations = timeInStates(e.timeline, now);

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
        lead={failed ? undefined : e.stateReason}
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
          onClick={() => (failed ? ask("start-again") : void run("start"))}
        >
          {failed ? "Start again" : "Start"}
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
      {failed && <FailurePanel environment={e} onRebuild={() => ask("rebuild")} />}
      {buildingStates.includes(e.state) && <BuildProgress environment={e} now={now} />}

      <div className="grid">
        <section className="card" aria-labelledby="overview-title">
          <h2 id="overview-title">Overview</h2>
          <dl className="facts">
            <dt>Image</dt>
            <dd>
              <ImageName image={e.image} />
            </dd>
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
            {e.timeline.map((change, i) => {
              const lasted = durations[i];
              // The current failure's reason is told above, once.
              const shownAbove = failed && i === e.timeline.length - 1 && change.reason === e.stateReason;
              return (
                <li key={`${change.at}-${change.state}`}>
                  <time dateTime={change.at} title={dateTime(change.at)}>
                    {time(change.at)}
                  </time>
                  <StateBadge state={change.state} past />
                  {lasted !== undefined && (
                    <span className="timeline-time-in" title={`${change.state} for ${duration(lasted)}`}>
                      {duration(lasted)}
                    </span>
                  )}
                  {change.reason && !shownAbove && <span className="timeline-reason">{change.reason}</span>}
                </li>
              );
            })}
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
        <BuildLog environment={shownBuild ? { ...e, buildId: shownBuild } : e} />
      </section>

      {confirming && (
        <ConfirmDialog
          open
          title={`${confirmText[confirming].title} ${e.name}?`}
          confirmLabel={confirmText[confirming].label}
          danger={confirming === "stop" || confirming === "delete"}
          busy={busy}
          onCancel={() => setConfirming(undefined)}
          onConfirm={() => void run(confirming === "start-again" ? "start" : confirming)}
        >
          <p>{confirmText[confirming].body}</p>
          {confirming === "start-again" && (
            <button type="button" className="link-button" onClick={() => ask("rebuild")}>
              Rebuild from another image instead
            </button>
          )}
          {confirming === "rebuild" && (
            <Field
              id="rebuild-image"
              label="Image"
              error={fieldErrors(invalidFields({ image: imageProblem }) ?? actionError).image}
              hint="Change it to build from another image."
            >
              {(props) => (
                <input
                  {...props}
                  className="mono"
                  autoComplete="off"
                  spellCheck={false}
                  value={image}
                  onChange={(event) => setImage(event.target.value)}
                />
              )}
            </Field>
          )}
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
          {!fieldErrors(actionError).image && <InlineError error={actionError} />}
        </ConfirmDialog>
      )}
    </>
  );
}
