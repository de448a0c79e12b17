/**
 * A shell in the environment, in the browser: xterm.js over the server's
 * terminal WebSocket. Resizes with the window, reconnects after a drop, and
 * closes cleanly when the environment stops. It never leaves a user stuck:
 * a stopped environment offers Start, an ended shell Reconnect, and a phone
 * gets the keys its keyboard lacks (Ctrl, Esc, Tab, arrows).
 */

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import "./terminal.css";
import { type MouseEvent, useEffect, useRef, useState } from "react";
import { actionAllowed, buildingStates, type EnvironmentState } from "../../../../src/core/environment.js";
import { StateBadge } from "../../components/badges.js";
import { ErrorState, InlineError, Loading } from "../../components/feedback.js";
import { environmentActions, useEnvironment } from "../../queries/environments.js";
import { Link } from "../../router.js";
import { type ConnectionStatus, TerminalConnection } from "./terminal-connection.js";
import { type ExtraKey, keyBytes, withControl } from "./terminal-keys.js";

const theme = {
  background: "#0f172a",
  foreground: "#e2e8f0",
  cursor: "#93c5fd",
  selectionBackground: "#334155",
  black: "#1e293b",
  red: "#f87171",
  green: "#4ade80",
  yellow: "#facc15",
  blue: "#60a5fa",
  magenta: "#c084fc",
  cyan: "#22d3ee",
  white: "#e2e8f0",
  brightBlack: "#64748b",
  brightRed: "#fca5a5",
  brightGreen: "#86efac",
  brightYellow: "#fde68a",
  brightBlue: "#93c5fd",
  brightMagenta: "#d8b4fe",
  brightCyan: "#67e8f9",
  brightWhite: "#f8fafc",
};

function statusText(status: ConnectionStatus): string {
  switch (status.kind) {
    case "connecting":
      return status.attempt > 1 ? `Reconnecting (attempt ${status.attempt})…` : "Connecting…";
    case "open":
      return "Connected";
    case "reconnecting":
      return `Connection lost. Reconnecting in ${status.inSeconds}s…`;
    case "ended":
      return status.reason;
  }
}

/** The keys a phone keyboard lacks, in a row under the terminal (shown on touch screens and narrow windows). */
function KeyBar({ send, ctrl, toggleCtrl }: { send: (key: ExtraKey) => void; ctrl: boolean; toggleCtrl: () => void }) {
  // Pressing a key must not move the focus away from the terminal, or the phone's keyboard closes.
  const keep = (event: MouseEvent) => event.preventDefault();
  const keys: [ExtraKey, string][] = [
    ["Esc", "Esc"],
    ["Tab", "Tab"],
    ["Up", "↑"],
    ["Down", "↓"],
    ["Left", "←"],
    ["Right", "→"],
  ];
  return (
    <div className="terminal-keys" role="toolbar" aria-label="Terminal keys">
      <button
        type="button"
        className="button button-small"
        aria-pressed={ctrl}
        onMouseDown={keep}
        onClick={toggleCtrl}
        title="Ctrl with the next key typed"
      >
        Ctrl
      </button>
      {keys.map(([key, label]) => (
        <button
          key={key}
          type="button"
          className="button button-small"
          aria-label={key}
          onMouseDown={keep}
          onClick={() => send(key)}
        >
          {label}
        </button>
      ))}
    </div>
  );
}

function TerminalView({
  environmentId,
  state,
  onStart,
}: {
  environmentId: string;
  state: EnvironmentState;
  onStart: () => void;
}) {
  const host = useRef<HTMLDivElement>(null);
  const connection = useRef<TerminalConnection>(undefined);
  const terminal = useRef<Terminal>(undefined);
  const [status, setStatus] = useState<ConnectionStatus>({ kind: "connecting", attempt: 1 });
  // Each connection is a generation: Reconnect opens the next one in the same terminal.
  const [generation, setGeneration] = useState(0);
  const ctrl = useRef(false);
  const [ctrlShown, setCtrlShown] = useState(false);
  const running = state === "running";

  const setCtrl = (on: boolean) => {
    ctrl.current = on;
    setCtrlShown(on);
  };

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme,
      allowProposedApi: false,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(element);
    fit.fit();
    terminal.current = term;

    // Ctrl+Shift+C / Ctrl+Shift+V copy and paste, as in desktop terminals; Ctrl+C stays an interrupt.
    term.attachCustomKeyEventHandler((event) => {
      if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey) return true;
      if (event.code === "KeyC") {
        const selection = term.getSelection();
        if (selection) void navigator.clipboard?.writeText(selection).catch(() => undefined);
        return false;
      }
      if (event.code === "KeyV") {
        void navigator.clipboard
          ?.readText()
          .then((text) => term.paste(text))
          .catch(() => undefined);
        return false;
      }
      return true;
    });
    const input = term.onData((data) => {
      // Ctrl from the key bar applies to the next key typed.
      if (ctrl.current && data.length === 1) {
        ctrl.current = false;
        setCtrlShown(false);
        connection.current?.input(withControl(data));
        return;
      }
      connection.current?.input(data);
    });
    const binary = term.onBinary((data) => connection.current?.input(Uint8Array.from(data, (c) => c.charCodeAt(0))));
    const resized = term.onResize(({ cols, rows }) => connection.current?.resize(cols, rows));
    const observer = new ResizeObserver(() => {
      try {
        fit.fit();
      } catch {
        // Not laid out yet.
      }
    });
    observer.observe(element);
    const online = () => connection.current?.retryNow();
    window.addEventListener("online", online);

    return () => {
      window.removeEventListener("online", online);
      observer.disconnect();
      input.dispose();
      binary.dispose();
      resized.dispose();
      terminal.current = undefined;
      term.dispose();
    };
  }, []);

  useEffect(() => {
    const term = terminal.current;
    if (!term) return;
    if (generation > 0) term.write("\r\n\x1b[90m[reconnecting]\x1b[0m\r\n");
    const session = new TerminalConnection(
      environmentId,
      { cols: term.cols, rows: term.rows },
      {
        output: (bytes) => terminal.current?.write(bytes),
        status: (next) => {
          setStatus(next);
          if (next.kind === "reconnecting")
            terminal.current?.write("\r\n\x1b[33m[connection lost, reconnecting]\x1b[0m\r\n");
          if (next.kind === "ended") terminal.current?.write(`\r\n\x1b[90m[${next.reason}]\x1b[0m\r\n`);
        },
      },
    );
    connection.current = session;
    term.focus();
    return () => session.end("Closed.");
  }, [environmentId, generation]);

  useEffect(() => {
    if (!running) connection.current?.end("The environment stopped; the terminal closed.");
  }, [running]);

  const copy = () => {
    const selection = terminal.current?.getSelection();
    if (selection) void navigator.clipboard?.writeText(selection).catch(() => undefined);
    terminal.current?.focus();
  };
  const paste = () => {
    void navigator.clipboard
      ?.readText()
      .then((text) => terminal.current?.paste(text))
      .catch(() => undefined)
      .finally(() => terminal.current?.focus());
  };
  const sendKey = (key: ExtraKey) => {
    const term = terminal.current;
    const applicationCursor = term?.modes.applicationCursorKeysMode ?? false;
    connection.current?.input(keyBytes(key, applicationCursor));
    term?.focus();
  };
  const ended = status.kind === "ended";

  return (
    <div className="terminal-frame">
      <div className="terminal-bar">
        <span className={`terminal-status terminal-${status.kind}`} role="status" data-testid="terminal-status">
          {statusText(status)}
        </span>
        <span className="terminal-tools">
          {ended && running && (
            <button type="button" className="button button-small" onClick={() => setGeneration((n) => n + 1)}>
              Reconnect
            </button>
          )}
          {ended && startable(state) && (
            <button type="button" className="button button-small" onClick={onStart}>
              Start
            </button>
          )}
          <button type="button" className="button button-small" onClick={copy} title="Ctrl+Shift+C">
            Copy
          </button>
          <button type="button" className="button button-small" onClick={paste} title="Ctrl+Shift+V">
            Paste
          </button>
        </span>
      </div>
      <div className="terminal" ref={host} data-testid="terminal" />
      <KeyBar send={sendKey} ctrl={ctrlShown} toggleCtrl={() => setCtrl(!ctrl.current)} />
    </div>
  );
}

/** Whether Start may begin from this state (stopped, failed). */
const startable = (state: EnvironmentState) => actionAllowed("start", state);

export default function TerminalPage({ params }: { params: Record<string, string> }) {
  const live = useEnvironment(params.ref);
  const e = live.environment;
  const running = e?.state === "running" && !live.gone;
  // Once open, the terminal stays on screen after a stop, saying why it closed.
  const [opened, setOpened] = useState(false);
  const [starting, setStarting] = useState(false);
  const [startError, setStartError] = useState<unknown>();
  useEffect(() => {
    if (running) setOpened(true);
  }, [running]);
  // Opening the terminal of a stopped environment starts it, and says so.
  const [autoStarted, setAutoStarted] = useState<string>();
  const state = e?.state;
  const id = e?.id;
  useEffect(() => {
    if (!id || autoStarted || opened || state !== "stopped") return;
    setAutoStarted(state);
    setStarting(true);
    environmentActions
      .start(id)
      .then((started) => live.accept(started), setStartError)
      .finally(() => setStarting(false));
  }, [id, state, autoStarted, opened, live]);
  if (!e) return live.error ? <ErrorState error={live.error} /> : <Loading what="environment" />;
  const start = async () => {
    setStarting(true);
    setStartError(undefined);
    try {
      live.accept(await environmentActions.start(e.id));
    } catch (error) {
      setStartError(error);
    } finally {
      setStarting(false);
    }
  };
  const building = buildingStates.includes(e.state);
  return (
    <div className="terminal-page">
      <p className="breadcrumb">
        <Link to="/environments">Environments</Link> / <Link to={`/environments/${e.id}`}>{e.name}</Link> / terminal{" "}
        <StateBadge state={e.state} />
      </p>
      <InlineError error={startError} />
      {running || opened ? (
        <>
          {/* A start can take under a second, over before its "starting it" was ever drawn: say it stays said. */}
          {autoStarted && (
            <p role="status" className="muted" data-testid="terminal-starting">
              {e.name} was {autoStarted}: started it.
            </p>
          )}
          <TerminalView environmentId={e.id} state={live.gone ? "deleted" : e.state} onStart={() => void start()} />
        </>
      ) : (
        <div className="feedback terminal-closed">
          {building ? (
            <p role="status" data-testid={autoStarted ? "terminal-starting" : undefined}>
              <span className="spinner" aria-hidden="true" />{" "}
              {autoStarted ? `${e.name} was ${autoStarted}: starting it. ` : ""}
              {e.name} is {e.state}; the terminal opens once it runs.
            </p>
          ) : (
            <p>
              The terminal opens while the environment is running; it is <strong>{e.state}</strong> now
              {e.state === "failed" && e.stateReason ? ` (${e.stateReason})` : ""}.
            </p>
          )}
          <div className="actions">
            {startable(e.state) && e.state !== "failed" && (
              <button type="button" className="button button-primary" disabled={starting} onClick={() => void start()}>
                {starting ? "Starting…" : "Start"}
              </button>
            )}
            <Link to={`/environments/${e.id}`} className="button">
              {e.state === "failed" ? "See why, and what to do" : "Go to the environment"}
            </Link>
          </div>
        </div>
      )}
    </div>
  );
}
