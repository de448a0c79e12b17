/** Manage > Audit log: who changed what, when; filtered by user, action and time, a page at a time. */

import { useState } from "react";
import type { AuditEntry, AuditFilter } from "../../../../src/core/audit.js";
import { auditChanges, auditTargetName } from "../../../../src/core/audit.js";
import { EmptyState, ErrorState, Loading } from "../../components/feedback.js";
import { PageHeader } from "../../components/shell.js";
import { dateTime } from "../../format.js";
import { auditPageSize, useAuditPage } from "../../queries/audit.js";
import { useAllUsers } from "../../queries/users.js";
import "./audit.css";

/** datetime-local has no zone; the filter is sent as UTC. */
const toIso = (local: string) => (local ? new Date(local).toISOString() : undefined);

const knownActions = [
  "settings.update",
  "user.create",
  "user.set-role",
  "user.update",
  "environment.create",
  "environment.start",
  "environment.stop",
  "environment.rebuild",
  "environment.delete",
];

/** The fields a change touched, before and after, in a row of its own under the entry. */
function Changes({ entry, columns }: { entry: AuditEntry; columns: number }) {
  const changes = auditChanges(entry.before, entry.after);
  return (
    <tr className="audit-changes" data-changes-of={entry.id}>
      <td colSpan={columns}>
        {changes.length === 0 ? (
          <p className="muted small">No field changed.</p>
        ) : (
          <table className="change-table" aria-label={`What ${entry.action} changed`}>
            <thead>
              <tr>
                <th scope="col">Field</th>
                <th scope="col">Before</th>
                <th scope="col">After</th>
              </tr>
            </thead>
            <tbody>
              {changes.map((change) => (
                <tr key={change.field} data-field={change.field}>
                  <th scope="row" className="mono">
                    {change.field}
                  </th>
                  <td className="mono change-before">{change.before ?? <span className="muted">—</span>}</td>
                  <td className="mono change-after">{change.after ?? <span className="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </td>
    </tr>
  );
}

const columns = 5;

function AuditRow({ entry }: { entry: AuditEntry }) {
  const [open, setOpen] = useState(false);
  const name = auditTargetName(entry);
  const recorded = entry.before !== null || entry.after !== null;
  return (
    <>
      <tr data-action={entry.action} className={open ? "audit-open" : undefined}>
        <td data-label="When" className="nowrap">
          {dateTime(entry.at)}
        </td>
        <td data-label="Who">{entry.actorEmail}</td>
        <td data-label="Action" className="mono">
          {entry.action}
        </td>
        <td data-label="Target" className="audit-target">
          <span>
            {name && <span className="audit-target-name">{name}</span>}
            <span className={name ? "mono muted small" : "mono"} title={entry.target}>
              {entry.target}
            </span>
          </span>
        </td>
        <td data-label="Change">
          {recorded ? (
            <button type="button" className="link-button" aria-expanded={open} onClick={() => setOpen(!open)}>
              {open ? "Hide" : "Show"}
            </button>
          ) : (
            <span className="muted">—</span>
          )}
        </td>
      </tr>
      {open && <Changes entry={entry} columns={columns} />}
    </>
  );
}

export default function AuditPage() {
  const users = useAllUsers();
  const [actor, setActor] = useState("");
  const [action, setAction] = useState("");
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  // Cursors of the pages before this one, to go back.
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const cursor = cursors[cursors.length - 1];
  const filter: AuditFilter = {
    actorId: actor || undefined,
    action: action || undefined,
    since: toIso(since),
    until: toIso(until),
  };
  const page = useAuditPage(filter, cursor);

  const setAndReset = (set: (value: string) => void) => (value: string) => {
    set(value);
    setCursors([undefined]);
  };

  return (
    <>
      <PageHeader
        title="Audit log"
        lead="Every change of settings, roles and environments: who, what, before and after."
      />
      <form className="toolbar" aria-label="Filter the audit log" onSubmit={(e) => e.preventDefault()}>
        <label className="toolbar-field">
          <span>User</span>
          <select value={actor} onChange={(e) => setAndReset(setActor)(e.target.value)}>
            <option value="">Anyone</option>
            {(users.data ?? []).map((u) => (
              <option key={u.id} value={u.id}>
                {u.email}
              </option>
            ))}
          </select>
        </label>
        <label className="toolbar-field">
          <span>Action</span>
          <input
            list="audit-actions"
            placeholder="Any action"
            value={action}
            onChange={(e) => setAndReset(setAction)(e.target.value)}
          />
          <datalist id="audit-actions">
            {knownActions.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
        </label>
        <label className="toolbar-field">
          <span>From</span>
          <input type="datetime-local" value={since} onChange={(e) => setAndReset(setSince)(e.target.value)} />
        </label>
        <label className="toolbar-field">
          <span>To</span>
          <input type="datetime-local" value={until} onChange={(e) => setAndReset(setUntil)(e.target.value)} />
        </label>
      </form>

      {page.data ? (
        page.data.items.length === 0 ? (
          <EmptyState title="No entries">
            <p>{cursors.length > 1 ? "No more entries." : "Nothing recorded matches these filters."}</p>
          </EmptyState>
        ) : (
          <div className="card card-flush">
            <table className="table responsive" aria-label="Audit log">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Who</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">Change</th>
                </tr>
              </thead>
              <tbody>
                {page.data.items.map((entry) => (
                  <AuditRow key={entry.id} entry={entry} />
                ))}
              </tbody>
            </table>
            <div className="pager">
              <button
                type="button"
                className="button button-small"
                disabled={cursors.length === 1}
                onClick={() => setCursors(cursors.slice(0, -1))}
              >
                Newer
              </button>
              <span className="muted small">
                Page {cursors.length} · {auditPageSize} per page
              </span>
              <button
                type="button"
                className="button button-small"
                disabled={!page.data.nextCursor}
                onClick={() => setCursors([...cursors, page.data?.nextCursor])}
              >
                Older
              </button>
            </div>
          </div>
        )
      ) : page.error ? (
        <ErrorState title="Could not load the audit log" error={page.error} retry={page.reload} />
      ) : (
        <Loading what="the audit log" />
      )}
    </>
  );
}
