/**
 * Routes and the session gate. Pages a role may not see do not exist for it:
 * a member who types /manage/users gets the not-found page.
 */

import { type ComponentType, lazy, Suspense, useEffect } from "react";
import type { Role } from "../../src/core/roles.js";
import { seesManage } from "../../src/core/roles.js";
import { ErrorState, Loading } from "./components/feedback.js";
import { Shell } from "./components/shell.js";
import { CreateEnvironmentPage } from "./pages/create/CreateEnvironmentPage.js";
import { EnvironmentPage } from "./pages/environment/EnvironmentPage.js";
import { EnvironmentsPage } from "./pages/environments/EnvironmentsPage.js";
import { FirstRunPage } from "./pages/login/FirstRunPage.js";
import { LoginPage } from "./pages/login/LoginPage.js";
import { NotFoundPage } from "./pages/not-found/NotFoundPage.js";
import { matchPath, navigate, useLocation } from "./router.js";
import { useSession } from "./session.js";

// xterm.js and the admin pages load only when opened, keeping the first page small.
const TerminalPage = lazy(() => import("./pages/terminal/TerminalPage.js"));
const InfrastructurePage = lazy(() => import("./pages/manage/InfrastructurePage.js"));
const UsersPage = lazy(() => import("./pages/manage/UsersPage.js"));
const AuditPage = lazy(() => import("./pages/manage/AuditPage.js"));

interface Route {
  path: string;
  page: ComponentType<{ params: Record<string, string> }>;
  /** Who may see the page; everyone signed in when absent. */
  allow?: (role: Role) => boolean;
  title: string;
}

const routes: Route[] = [
  { path: "/environments", page: EnvironmentsPage, title: "Environments" },
  { path: "/environments/new", page: CreateEnvironmentPage, title: "New environment" },
  { path: "/environments/:ref", page: EnvironmentPage, title: "Environment" },
  { path: "/environments/:ref/terminal", page: TerminalPage, title: "Terminal" },
  { path: "/manage/infrastructure", page: InfrastructurePage, allow: seesManage, title: "Infrastructure" },
  { path: "/manage/users", page: UsersPage, allow: seesManage, title: "Users" },
  { path: "/manage/audit", page: AuditPage, allow: seesManage, title: "Audit log" },
];

function resolve(pathname: string, role: Role) {
  for (const route of routes) {
    const params = matchPath(route.path, pathname);
    if (params && (!route.allow || route.allow(role))) return { route, params };
  }
  return undefined;
}

function SignedIn({ role }: { role: Role }) {
  const { pathname } = useLocation();
  useEffect(() => {
    if (pathname === "/" || pathname === "/login" || pathname === "/setup")
      navigate("/environments", { replace: true });
  }, [pathname]);
  const found = resolve(pathname, role);
  useEffect(() => {
    document.title = found ? `${found.route.title} · cvm` : "Not found · cvm";
  }, [found]);
  const Page = found?.route.page;
  return (
    <Shell>
      <Suspense fallback={<Loading what="page" />}>
        {Page ? <Page key={pathname} params={found.params} /> : <NotFoundPage />}
      </Suspense>
    </Shell>
  );
}

export function App() {
  const { state, retry } = useSession();
  switch (state.phase) {
    case "loading":
      return (
        <div className="centered">
          <Loading what="cvm" />
        </div>
      );
    case "unreachable":
      return (
        <div className="centered">
          <ErrorState title="cvm server is not answering" error={new Error(state.message)} retry={retry} />
        </div>
      );
    case "first-run":
      return <FirstRunPage />;
    case "signed-out":
      return <LoginPage message={state.message} />;
    case "signed-in":
      return <SignedIn role={state.user.role} />;
  }
}
