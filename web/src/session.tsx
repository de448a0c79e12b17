/**
 * Who is signed in. The session itself is the HttpOnly cookie, which scripts
 * cannot read; a small hint in localStorage says whether we believe we hold
 * one, so a fresh visitor goes straight to the login form instead of asking
 * the server (and logging a 401) first.
 */

import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useRef, useState } from "react";
import type { FirstAdminRequest, LoginRequest } from "../../src/api/contract.js";
import type { User } from "../../src/core/user.js";
import { ApiError, client, onUnauthorized } from "./api.js";

export type SessionState =
  | { phase: "loading" }
  | { phase: "unreachable"; message: string }
  | { phase: "first-run" }
  | { phase: "signed-out"; message?: string }
  | { phase: "signed-in"; user: User };

interface SessionApi {
  state: SessionState;
  login(credentials: LoginRequest): Promise<void>;
  createFirstAdmin(request: FirstAdminRequest): Promise<void>;
  logout(): Promise<void>;
  retry(): void;
}

const hintKey = "cvm.signedIn";
const expiredMessage = "Your session expired, sign in again";
const SessionContext = createContext<SessionApi | undefined>(undefined);

function setHint(signedIn: boolean) {
  try {
    if (signedIn) window.localStorage.setItem(hintKey, "1");
    else window.localStorage.removeItem(hintKey);
  } catch {
    // Storage may be disabled; the hint only saves a request.
  }
}

function hasHint(): boolean {
  try {
    return window.localStorage.getItem(hintKey) === "1";
  } catch {
    return true;
  }
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ phase: "loading" });
  const phase = useRef(state.phase);
  phase.current = state.phase;
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    void attempt;
    let cancelled = false;
    (async () => {
      try {
        const setup = await client.setupStatus();
        if (cancelled) return;
        if (setup.needsFirstAdmin) return setState({ phase: "first-run" });
        if (!hasHint()) return setState({ phase: "signed-out" });
        const user = await client.whoami();
        if (!cancelled) setState({ phase: "signed-in", user });
      } catch (error) {
        if (cancelled) return;
        if (error instanceof ApiError && error.status === 401) {
          setHint(false);
          setState({ phase: "signed-out", message: expiredMessage });
        } else {
          setState({ phase: "unreachable", message: error instanceof Error ? error.message : String(error) });
        }
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [attempt]);

  // Any 401 while signed in: the session ended under us (expired, revoked, deactivated).
  useEffect(
    () =>
      onUnauthorized(() => {
        if (phase.current !== "signed-in") return;
        setHint(false);
        setState({ phase: "signed-out", message: expiredMessage });
      }),
    [],
  );

  const login = useCallback(async (credentials: LoginRequest) => {
    const session = await client.login(credentials);
    setHint(true);
    setState({ phase: "signed-in", user: session.user });
  }, []);

  const createFirstAdmin = useCallback(async (request: FirstAdminRequest) => {
    const session = await client.createFirstAdmin(request);
    setHint(true);
    setState({ phase: "signed-in", user: session.user });
  }, []);

  const logout = useCallback(async () => {
    try {
      await client.logout();
    } finally {
      setHint(false);
      setState({ phase: "signed-out", message: "You signed out." });
    }
  }, []);

  const retry = useCallback(() => {
    setState({ phase: "loading" });
    setAttempt((n) => n + 1);
  }, []);

  const api = useMemo(
    () => ({ state, login, createFirstAdmin, logout, retry }),
    [state, login, createFirstAdmin, logout, retry],
  );
  return <SessionContext.Provider value={api}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionApi {
  const api = useContext(SessionContext);
  if (!api) throw new Error("useSession outside SessionProvider");
  return api;
}

/** The signed-in user; only for pages rendered inside the signed-in shell. */
export function useUser(): User {
  const { state } = useSession();
  if (state.phase !== "signed-in") throw new Error("useUser while signed out");
  return state.user;
}
