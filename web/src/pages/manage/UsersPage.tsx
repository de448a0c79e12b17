/** Manage > Users: who has an account, with which role, a page at a time; admins create, re-role and deactivate. */

import { type FormEvent, useState } from "react";
import type { Role } from "../../../../src/core/roles.js";
import { can, roles } from "../../../../src/core/roles.js";
import { emailProblem, passwordProblem, type User } from "../../../../src/core/user.js";
import { fieldErrors, invalidFields } from "../../api.js";
import { ConfirmDialog } from "../../components/confirm-dialog.js";
import { EmptyState, ErrorState, InlineError, Loading } from "../../components/feedback.js";
import { Field } from "../../components/field.js";
import { PageHeader } from "../../components/shell.js";
import { dateTime } from "../../format.js";
import { createUser, updateUser, userPageSize, useUserList } from "../../queries/users.js";
import { useUser } from "../../session.js";

const roleLabel: Record<Role, string> = {
  "site-admin": "Site admin",
  "site-manager": "Site manager",
  member: "Member",
};

/** What a role may do ("they may ..."), said before an admin gives it. */
const roleReach: Record<Role, string> = {
  "site-admin": "change everything: users and their roles, infrastructure settings and every environment",
  "site-manager":
    "change infrastructure settings and every environment, and read users and the audit log, but not change users",
  member: "use their own environments only",
};

function CreateUserForm({ onCreated }: { onCreated: (user: User) => void }) {
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("member");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const fields = fieldErrors(error);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const problems = invalidFields({ email: emailProblem(email), password: passwordProblem(password) });
    setError(problems);
    if (problems) return;
    setBusy(true);
    try {
      onCreated(await createUser({ email, password, role, name: name || undefined }));
      setEmail("");
      setName("");
      setPassword("");
      setRole("member");
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card form form-wide" onSubmit={submit} noValidate aria-label="New user">
      <h2>New user</h2>
      <div className="form-row">
        <Field id="user-email" label="Email" error={fields.email}>
          {(props) => <input {...props} type="email" value={email} onChange={(e) => setEmail(e.target.value)} />}
        </Field>
        <Field id="user-name" label="Name" error={fields.name}>
          {(props) => <input {...props} value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
      </div>
      <div className="form-row">
        <Field id="user-password" label="Initial password" error={fields.password} hint="At least 8 characters.">
          {(props) => (
            <input
              {...props}
              type="password"
              autoComplete="new-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          )}
        </Field>
        <Field id="user-role" label="Role" error={fields.role}>
          {(props) => (
            <select {...props} value={role} onChange={(e) => setRole(e.target.value as Role)}>
              {roles.map((r) => (
                <option key={r} value={r}>
                  {roleLabel[r]}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      {Object.keys(fields).length === 0 && <InlineError error={error} />}
      <div className="actions">
        <button type="submit" className="button button-primary" disabled={busy}>
          {busy ? "Creating…" : "Create user"}
        </button>
      </div>
    </form>
  );
}

export default function UsersPage() {
  const me = useUser();
  const writes = can(me.role, "users:write");
  const users = useUserList();
  const [error, setError] = useState<unknown>();
  const [deactivating, setDeactivating] = useState<User>();
  const [reroling, setReroling] = useState<{ user: User; role: Role }>();
  const [notice, setNotice] = useState<string>();
  const [busy, setBusy] = useState(false);

  const replace = (user: User) => {
    const list = users.data?.items ?? [];
    users.set({
      ...users.data,
      items: list.some((u) => u.id === user.id) ? list.map((u) => (u.id === user.id ? user : u)) : [...list, user],
    });
  };

  const change = async (user: User, request: { role?: Role; active?: boolean }) => {
    setBusy(true);
    setError(undefined);
    setNotice(undefined);
    try {
      const changed = await updateUser(user.id, request);
      replace(changed);
      setDeactivating(undefined);
      setReroling(undefined);
      setNotice(
        request.role
          ? `${changed.email} is now a ${roleLabel[changed.role]}.`
          : changed.active
            ? `${changed.email} is active again and can sign in.`
            : `${changed.email} is deactivated: signed out, and can no longer sign in.`,
      );
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const created = (user: User) => {
    replace(user);
    setError(undefined);
    setNotice(`Created ${user.email} (${roleLabel[user.role]}). They sign in with the initial password you gave.`);
  };

  return (
    <>
      <PageHeader
        title="Users"
        lead={writes ? "Accounts and their roles." : "Accounts and their roles. Only a site admin changes them."}
      />
      {writes && <CreateUserForm onCreated={created} />}
      {notice && (
        <p className="notice notice-ok" role="status">
          {notice}
        </p>
      )}
      {!deactivating && !reroling && <InlineError error={error} />}
      {users.data ? (
        users.data.items.length === 0 ? (
          <EmptyState title="No users" />
        ) : (
          <div className="card card-flush">
            <table className="table responsive" aria-label="Users">
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Name</th>
                  <th scope="col">Role</th>
                  <th scope="col">Status</th>
                  <th scope="col">Created</th>
                  {writes && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {users.data.items.map((user) => (
                  <tr key={user.id} data-user={user.email}>
                    <td data-label="Email">{user.email}</td>
                    <td data-label="Name">{user.name || "—"}</td>
                    <td data-label="Role">
                      {writes && user.id !== me.id ? (
                        <select
                          aria-label={`Role of ${user.email}`}
                          value={user.role}
                          disabled={busy}
                          onChange={(e) => {
                            setError(undefined);
                            setReroling({ user, role: e.target.value as Role });
                          }}
                        >
                          {roles.map((r) => (
                            <option key={r} value={r}>
                              {roleLabel[r]}
                            </option>
                          ))}
                        </select>
                      ) : (
                        roleLabel[user.role]
                      )}
                    </td>
                    <td data-label="Status">
                      <span className={user.active ? "badge badge-ok" : "badge badge-rest"}>
                        {user.active ? "active" : "deactivated"}
                      </span>
                    </td>
                    <td data-label="Created">{dateTime(user.createdAt)}</td>
                    {writes && (
                      <td data-label="Actions">
                        {user.id === me.id ? (
                          <span className="muted">you</span>
                        ) : user.active ? (
                          <button
                            type="button"
                            className="button button-small button-danger-outline"
                            onClick={() => {
                              setError(undefined);
                              setDeactivating(user);
                            }}
                          >
                            Deactivate
                          </button>
                        ) : (
                          <button
                            type="button"
                            className="button button-small"
                            disabled={busy}
                            onClick={() => void change(user, { active: true })}
                          >
                            Reactivate
                          </button>
                        )}
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
            {users.data.nextCursor && (
              <div className="table-foot">
                <span>{users.data.items.length} users, oldest first</span>
                <button
                  type="button"
                  className="button button-small"
                  disabled={users.loadingMore}
                  onClick={() => users.loadMore().catch(setError)}
                >
                  {users.loadingMore ? "Loading…" : `Show ${userPageSize} more`}
                </button>
              </div>
            )}
          </div>
        )
      ) : users.error ? (
        <ErrorState title="Could not load users" error={users.error} retry={users.reload} />
      ) : (
        <Loading what="users" />
      )}
      <ConfirmDialog
        open={Boolean(deactivating)}
        title={`Deactivate ${deactivating?.email}?`}
        confirmLabel="Deactivate"
        danger
        busy={busy}
        onCancel={() => setDeactivating(undefined)}
        onConfirm={() => deactivating && void change(deactivating, { active: false })}
      >
        <p>They are signed out and can no longer sign in. Their environments are kept.</p>
        <InlineError error={error} />
      </ConfirmDialog>
      <ConfirmDialog
        open={Boolean(reroling)}
        title={reroling ? `Make ${reroling.user.email} a ${roleLabel[reroling.role]}?` : ""}
        confirmLabel="Change role"
        busy={busy}
        onCancel={() => setReroling(undefined)}
        onConfirm={() => reroling && void change(reroling.user, { role: reroling.role })}
      >
        {reroling && (
          <p>
            As a {roleLabel[reroling.role]} they may {roleReach[reroling.role]}. It applies from their next request.
          </p>
        )}
        <InlineError error={error} />
      </ConfirmDialog>
    </>
  );
}
