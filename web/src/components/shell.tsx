/**
 * The signed-in frame: a left navigation on wide screens, a top bar on
 * narrow ones. Manage appears only for roles that may see it; its pages sit
 * under Admin, the path the docs and messages name (Manage > Admin > Infrastructure).
 */

import type { ReactNode } from "react";
import { seesManage } from "../../../src/core/roles.js";
import { Link, useLocation } from "../router.js";
import { useSession, useUser } from "../session.js";

const roleLabel = { "site-admin": "Site admin", "site-manager": "Site manager", member: "Member" } as const;

function NavLink({ to, children }: { to: string; children: ReactNode }) {
  const { pathname } = useLocation();
  const current = pathname === to || pathname.startsWith(`${to}/`);
  return (
    <Link
      to={to}
      className={current ? "nav-link nav-link-current" : "nav-link"}
      aria-current={current ? "page" : undefined}
    >
      {children}
    </Link>
  );
}

export function Shell({ children }: { children: ReactNode }) {
  const user = useUser();
  const { logout } = useSession();
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="sidebar">
        <Link to="/environments" className="brand" aria-label="cvm home">
          <span className="brand-mark" aria-hidden="true" />
          cvm
        </Link>
        <nav aria-label="Main" className="nav">
          <NavLink to="/environments">Environments</NavLink>
          {seesManage(user.role) && (
            <div className="nav-group" data-testid="manage-menu">
              <span className="nav-heading">Manage</span>
              <span className="nav-subheading">Admin</span>
              <NavLink to="/manage/infrastructure">Infrastructure</NavLink>
              <NavLink to="/manage/users">Users</NavLink>
              <NavLink to="/manage/audit">Audit log</NavLink>
            </div>
          )}
        </nav>
        <div className="account">
          <span className="account-name" title={user.email}>
            {user.name || user.email}
          </span>
          <span className="account-role">{roleLabel[user.role]}</span>
          <button type="button" className="button button-small" onClick={() => void logout()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" className="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}

/** A page's title row, with its primary actions on the right. */
export function PageHeader({ title, children, lead }: { title: ReactNode; children?: ReactNode; lead?: ReactNode }) {
  return (
    <div className="page-header">
      <div>
        <h1>{title}</h1>
        {lead && <p className="lead">{lead}</p>}
      </div>
      {children && <div className="page-actions">{children}</div>}
    </div>
  );
}
