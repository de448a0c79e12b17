/**
 * A shell in the environment, in the browser: xterm.js over the server's
 * terminal WebSocket. Resizes with the window, reconnects after a drop, and
 * closes cleanly when the environment stops.
 */

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "react";
import { StateBadge } from "../../components/badges.js";
import { ErrorState, InlineError, Loading } from "../../components/feedback.js";
import { environmentActions, useEnvironment } from "../../queries/environments.js";
import { Link } from "../../router.js";
import { type ConnectionStatus, TerminalConnection } from "./terminal-connection.js";

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

function TerminalView({ environmentId, running }: { environmentId: string; running: boolean }) {
  const host = useRef<HTMLDivElement>(null);
  const connection = useRef<TerminalConnection>(undefined);
  const terminal = useRef<Terminal>(undefined);
  const [status, setStatus] = useState<ConnectionStatus>({ kind: "connecting", attempt: 1 });

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

    const session = new TerminalConnection(
      environmentId,
      { cols: term.cols, rows: term.rows },
      {
        output: (bytes) => term.write(bytes),
        status: (next) => {
          setStatus(next);
          if (next.kind === "reconnecting") term.write("\r\n\x1b[33m[connection lost, reconnecting]\x1b[0m\r\n");
          if (next.kind === "ended") term.write(`\r\n\x1b[90m[${next.reason}]\x1b[0m\r\n`);
        },
      },
    );
    connection.current = session;

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
    const input = term.onData((data) => session.input(data));
    const binary = term.onBinary((data) => session.input(Uint8Array.from(data, (c) => c.charCodeAt(0))));
    const resized = term.onResize(({ cols, rows }) => session.resize(cols, rows));
    const observer = new ResizeObserver(() => {
      try {
        fit.fit();
      } catch {
        // Not laid out yet.
      }
    });
    observer.observe(element);
    const online = () => session.retryNow();
    window.addEventListener("online", online);
    term.focus();

    return () => {
      window.removeEventListener("online", online);
      observer.disconnect();
      input.dispose();
      binary.dispose();
      resized.dispose();
      session.end("Closed.");
      term.dispose();
    };
  }, [environmentId]);

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

  return (
    <div className="terminal-frame">
      <div className="terminal-bar">
        <span className={`terminal-status terminal-${status.kind}`} role="status" data-testid="terminal-status">
          {statusText(status)}
        </span>
        <span className="terminal-tools">
          <button type="button" className="button button-small" onClick={copy} title="Ctrl+Shift+C">
            Copy
          </button>
          <button type="button" className="button button-small" onClick={paste} title="Ctrl+Shift+V">
            Paste
          </button>
        </span>
      </div>
      <div className="terminal" ref={host} data-testid="terminal" />
    </div>
  );
}

export default function TerminalPage({ params }: { params: Record<string, string> }) {
  const live = useEnvironment(params.ref);
  const e = live.environment;
  const running = e?.state === "running" && !live.gone;
  // Once open, the terminal stays on screen after a stop, saying why it closed.
  const [opened, setOpened] = useState(false);
  useEffect(() => {
    if (running) setOpened(true);
  }, [running]);
  // Opening the terminal of a stopped environment starts it, and says so.
  const [starting, setStarting] = useState<{ from: string; error?: unknown }>();
  const state = e?.state;
  const id = e?.id;
  useEffect(() => {
    if (!id || starting || opened || (state !== "stopped" && state !== "failed")) return;
    setStarting({ from: state });
    environmentActions.start(id).then(
      (started) => live.accept(started),
      (error: unknown) => setStarting({ from: state, error }),
    );
  }, [id, state, starting, opened, live]);
  if (!e) return live.error ? <ErrorState error={live.error} /> : <Loading what="environment" />;
  return (
    <div className="terminal-page">
      <p className="breadcrumb">
        <Link to="/environments">Environments</Link> / <Link to={`/environments/${e.id}`}>{e.name}</Link> / terminal{" "}
        <StateBadge state={e.state} />
      </p>
      {running || opened ? (
        <TerminalView environmentId={e.id} running={running} />
      ) : starting && !starting.error ? (
        <div className="feedback" data-testid="terminal-starting">
          <p>
            {e.name} was {starting.from}: starting it. The terminal opens once it runs ({e.state} now).
          </p>
        </div>
      ) : (
        <div className="feedback">
          <p>
            The terminal opens while the environment is running; it is <strong>{e.state}</strong> now.
          </p>
          <InlineError error={starting?.error} />
          <Link to={`/environments/${e.id}`} className="button">
            Go to the environment
          </Link>
        </div>
      )}
    </div>
  );
}
