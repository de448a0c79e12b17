/**
 * Every environment the user may see, newest first, live: states change as
 * builds move, without a refresh. The server filters and pages the list (100
 * at a time, more on request); filters live in the URL so a filtered view can
 * be shared. Each row offers what its state allows: the terminal, start, stop.
 */

import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useState } from "react";
import type {
  Environment,
  EnvironmentAction,
  EnvironmentKind,
  EnvironmentState,
  EnvironmentSummary,
} from "../../../../src/core/environment.js";
import { actionAllowed, environmentKinds, environmentStates } from "../../../../src/core/environment.js";
import { can } from "../../../../src/core/roles.js";
import { KindBadge, StateBadge } from "../../components/badges.js";
import { ConfirmDialog } from "../../components/confirm-dialog.js";
import { EmptyState, ErrorState, InlineError, Loading } from "../../components/feedback.js";
import { ImageName } from "../../components/image-name.js";
import { LiveIndicator } from "../../components/live-indicator.js";
import { PageHeader } from "../../components/shell.js";
import { age, resources } from "../../format.js";
import { environmentActions, environmentPageSize, listMarks, useEnvironmentList } from "../../queries/environments.js";
import { Link, navigate, useLocation } from "../../router.js";
import { useUser } from "../../session.js";

interface Filters {
  state: string;
  kind: string;
  name: string;
  owner: "me" | "all";
}

function matches(environment: EnvironmentSummary, filters: Omit<Filters, "owner">): boolean {
  if (filters.state && environment.state !== filters.state) return false;
  if (filters.kind === "cvm" && !environment.cvm) return false;
  if (filters.kind === "standard" && environment.cvm) return false;
  if (filters.name && !environment.name.includes(filters.name.toLowerCase())) return false;
  return true;
}

/** What a row offers for its environment's state: its terminal while running, start when stopped or failed, stop while up. */
function RowActions({
  environment,
  busy,
  onStart,
  onStop,
}: {
  environment: EnvironmentSummary;
  busy: boolean;
  onStart: (environment: EnvironmentSummary) => void;
  onStop: (environment: EnvironmentSummary) => void;
}) {
  const { name, state } = environment;
  return (
    <span className="row-actions">
      {state === "running" && (
        <Link
          to={`/environments/${environment.id}/terminal`}
          className="button button-small"
          aria-label={`Open the terminal of ${name}`}
        >
          Terminal
        </Link>
      )}
      {allowed("start", environment) && (
        <button
          type="button"
          className="button button-small"
          disabled={busy}
          aria-label={`Start ${name}`}
          onClick={() => onStart(environment)}
        >
          Start
        </button>
      )}
      {allowed("stop", environment) && (
        <button
          type="button"
          className="button button-small"
          disabled={busy}
          aria-label={`Stop ${name}`}
          onClick={() => onStop(environment)}
        >
          Stop
        </button>
      )}
    </span>
  );
}

const allowed = (action: EnvironmentAction, environment: EnvironmentSummary) =>
  actionAllowed(action, environment.state);

const Row = memo(function Row({
  environment,
  showOwner,
  now,
  busy,
  onStart,
  onStop,
}: {
  environment: EnvironmentSummary;
  showOwner: boolean;
  now: number;
  busy: boolean;
  onStart: (environment: EnvironmentSummary) => void;
  onStop: (environment: EnvironmentSummary) => void;
}) {
  return (
    <tr data-environment={environment.name}>
      <td data-label="Name">
        <span className="name-cell">
          <Link to={`/environments/${environment.id}`} className="strong-link">
            {environment.name}
          </Link>
          <KindBadge cvm={environment.cvm} />
        </span>
      </td>
      <td data-label="State">
        <StateBadge state={environment.state} />
      </td>
      <td data-label="Image" title={environment.image}>
        <ImageName image={environment.image} />
      </td>
      <td data-label="Resources">
        {/* Wraps between the amounts, never inside one. */}
        {resources(environment)
          .split(" · ")
          .map((amount) => amount.replaceAll(" ", "\u00a0"))
          .join(" · ")}
      </td>
      {showOwner && (
        <td data-label="Owner" className="owner-cell">
          {environment.ownerEmail.split("@")[0]}
          <wbr />@{environment.ownerEmail.split("@").slice(1).join("@")}
        </td>
      )}
      <td data-label="Age" className="nowrap">
        <time dateTime={environment.createdAt} title={environment.createdAt}>
          {age(environment.createdAt, now)}
        </time>
      </td>
      <td data-label="Actions">
        <RowActions environment={environment} busy={busy} onStart={onStart} onStop={onStop} />
      </td>
    </tr>
  );
});

export function EnvironmentsPage() {
  const user = useUser();
  const seesAll = can(user.role, "environments:all");
  const { search } = useLocation();
  const filters: Filters = {
    state: search.get("state") ?? "",
    kind: search.get("kind") ?? "",
    name: search.get("name") ?? "",
    owner: seesAll && search.get("owner") === "all" ? "all" : "me",
  };
  // Typing a name asks the server once the typing pauses; the rows shown are narrowed at once.
  const [typedName, setTypedName] = useState(filters.name);
  useEffect(() => {
    const timer = setTimeout(() => setTypedName(filters.name), 250);
    return () => clearTimeout(timer);
  }, [filters.name]);
  const list = useEnvironmentList(
    {
      owner: filters.owner,
      state: (environmentStates as readonly string[]).includes(filters.state)
        ? (filters.state as EnvironmentState)
        : undefined,
      kind: (environmentKinds as readonly string[]).includes(filters.kind)
        ? (filters.kind as EnvironmentKind)
        : undefined,
      name: typedName.toLowerCase() || undefined,
    },
    user.id,
  );
  const [now, setNow] = useState(() => Date.now());
  // Row actions: the environment being acted on, the one whose stop awaits confirmation, and what went wrong.
  const [acting, setActing] = useState<string>();
  const [stopping, setStopping] = useState<EnvironmentSummary>();
  const [actionError, setActionError] = useState<unknown>();
  const act = useCallback(async (environment: EnvironmentSummary, action: (id: string) => Promise<Environment>) => {
    setActing(environment.id);
    setActionError(undefined);
    try {
      await action(environment.id);
      setStopping(undefined);
    } catch (error) {
      setActionError(error);
    } finally {
      setActing(undefined);
    }
  }, []);
  const start = useCallback(
    (environment: EnvironmentSummary) => void act(environment, environmentActions.start),
    [act],
  );

  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 30_000);
    return () => clearInterval(timer);
  }, []);

  const setFilter = (key: keyof Filters, value: string) => {
    const next = new URLSearchParams(search);
    if (value) next.set(key, value);
    else next.delete(key);
    const query = next.toString();
    navigate(`/environments${query ? `?${query}` : ""}`, { replace: true });
  };

  const { state, kind, name } = filters;
  const shown = useMemo(
    () =>
      (list.items ?? [])
        .filter((e) => matches(e, { state, kind, name }))
        .sort((a, b) =>
          a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.name.localeCompare(b.name),
        ),
    [list.items, state, kind, name],
  );

  // For bench/web: the moment the first list (empty or not) is on screen.
  const rendered = list.items !== undefined;
  useLayoutEffect(() => {
    if (!rendered || performance.getEntriesByName(listMarks.rendered).length) return;
    performance.mark(listMarks.committed);
    requestAnimationFrame(() => setTimeout(() => performance.mark(listMarks.rendered), 0));
  }, [rendered]);

  const filtering = Boolean(filters.state || filters.kind || filters.name);
  const showOwner = filters.owner === "all";

  return (
    <>
      <PageHeader title="Environments" lead="Your development environments, updated as they change.">
        <LiveIndicator status={list.live} />
        <Link to="/environments/new" className="button button-primary">
          New environment
        </Link>
      </PageHeader>

      {!stopping && <InlineError error={actionError} />}
      <ConfirmDialog
        open={Boolean(stopping)}
        title={`Stop ${stopping?.name}?`}
        confirmLabel="Stop"
        danger
        busy={Boolean(acting)}
        onCancel={() => setStopping(undefined)}
        onConfirm={() => stopping && void act(stopping, environmentActions.stop)}
      >
        <p>Running processes end and open terminals close. The home volume is kept.</p>
        <InlineError error={actionError} />
      </ConfirmDialog>
      <form className="toolbar" aria-label="Filter environments" onSubmit={(e) => e.preventDefault()}>
        <label className="toolbar-field">
          <span>Name</span>
          <input
            type="search"
            placeholder="Filter by name"
            value={filters.name}
            onChange={(e) => setFilter("name", e.target.value)}
          />
        </label>
        <label className="toolbar-field">
          <span>State</span>
          <select value={filters.state} onChange={(e) => setFilter("state", e.target.value)}>
            <option value="">All states</option>
            {environmentStates
              .filter((s) => s !== "deleted")
              .map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
          </select>
        </label>
        <label className="toolbar-field">
          <span>Kind</span>
          <select value={filters.kind} onChange={(e) => setFilter("kind", e.target.value)}>
            <option value="">All kinds</option>
            <option value="cvm">CVM</option>
            <option value="standard">Standard</option>
          </select>
        </label>
        {seesAll && (
          <label className="toolbar-field">
            <span>Owner</span>
            <select value={filters.owner} onChange={(e) => setFilter("owner", e.target.value === "all" ? "all" : "")}>
              <option value="me">Mine</option>
              <option value="all">Everyone's</option>
            </select>
          </label>
        )}
      </form>

      {list.items === undefined ? (
        list.error ? (
          <ErrorState title="Could not load environments" error={list.error} retry={list.reload} />
        ) : (
          <Loading what="environments" />
        )
      ) : list.items.length === 0 && !filtering ? (
        <EmptyState title="No environments yet">
          <p>
            An environment is a container with your tools, started from an image you choose. Create one, watch it build,
            then open its terminal right here in the browser.
          </p>
          <Link to="/environments/new" className="button button-primary">
            Create your first environment
          </Link>
        </EmptyState>
      ) : shown.length === 0 ? (
        <EmptyState title="Nothing matches these filters">
          <button type="button" className="button" onClick={() => navigate("/environments", { replace: true })}>
            Clear filters
          </button>
        </EmptyState>
      ) : (
        <div className="card card-flush">
          {/*
            Rows are laid out as grids, so rows off screen can skip layout and paint
            (content-visibility): 500 environments cost little more than one screenful.
          */}
          <table className={`table responsive grid-table${showOwner ? " with-owner" : ""}`} aria-label="Environments">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">State</th>
                <th scope="col">Image</th>
                <th scope="col">Resources</th>
                {showOwner && <th scope="col">Owner</th>}
                <th scope="col">Age</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((environment) => (
                <Row
                  key={environment.id}
                  environment={environment}
                  showOwner={showOwner}
                  now={now}
                  busy={acting === environment.id}
                  onStart={start}
                  onStop={setStopping}
                />
              ))}
            </tbody>
          </table>
          <div className="table-foot">
            <span>
              {shown.length} environment{shown.length === 1 ? "" : "s"}
              {list.hasMore ? ", newest first; older ones on request" : ""}
            </span>
            {list.hasMore && (
              <button type="button" className="button button-small" disabled={list.loadingMore} onClick={list.loadMore}>
                {list.loadingMore ? "Loading…" : `Show ${environmentPageSize} more`}
              </button>
            )}
          </div>
        </div>
      )}
    </>
  );
}
