/**
 * Every environment the user may see, newest first, live: states change as
 * builds move, without a refresh. The server filters and pages the list (100
 * at a time, more on request); filters live in the URL so a filtered view can
 * be shared.
 */

import { memo, useEffect, useLayoutEffect, useMemo, useState } from "react";
import type { EnvironmentKind, EnvironmentState, EnvironmentSummary } from "../../../../src/core/environment.js";
import { environmentKinds, environmentStates } from "../../../../src/core/environment.js";
import { can } from "../../../../src/core/roles.js";
import { KindBadge, StateBadge } from "../../components/badges.js";
import { EmptyState, ErrorState, Loading } from "../../components/feedback.js";
import { LiveIndicator } from "../../components/live-indicator.js";
import { PageHeader } from "../../components/shell.js";
import { age, resources } from "../../format.js";
import { environmentPageSize, listMarks, useEnvironmentList } from "../../queries/environments.js";
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

const Row = memo(function Row({
  environment,
  showOwner,
  now,
}: {
  environment: EnvironmentSummary;
  showOwner: boolean;
  now: number;
}) {
  return (
    <tr data-environment={environment.name}>
      <td data-label="Name">
        <Link to={`/environments/${environment.id}`} className="strong-link">
          {environment.name}
        </Link>
      </td>
      <td data-label="State">
        <StateBadge state={environment.state} />
      </td>
      <td data-label="Kind">
        <KindBadge cvm={environment.cvm} />
      </td>
      <td data-label="Image" className="mono truncate" title={environment.image}>
        {environment.image}
      </td>
      <td data-label="Resources" className="nowrap">
        {resources(environment)}
      </td>
      {showOwner && (
        <td data-label="Owner" className="truncate">
          {environment.ownerEmail}
        </td>
      )}
      <td data-label="Age" className="nowrap">
        <time dateTime={environment.createdAt} title={environment.createdAt}>
          {age(environment.createdAt, now)}
        </time>
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
                <th scope="col">Kind</th>
                <th scope="col">Image</th>
                <th scope="col">Resources</th>
                {showOwner && <th scope="col">Owner</th>}
                <th scope="col">Age</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((environment) => (
                <Row key={environment.id} environment={environment} showOwner={showOwner} now={now} />
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
