/**
 * The environment page as a home: how to connect (the `cvm ssh` and
 * `ssh NAME.cvm` lines with copy buttons, VS Code's Remote-SSH link), what
 * it uses against its limits (live), the ports listening inside with their
 * shares and links, and the idle timer with the environment's own setting.
 */

import { useEffect, useState } from "react";
import type { PortInfo } from "../../../../src/api/workspace-schemas.js";
import type { Environment } from "../../../../src/core/environment.js";
import type { PortShare } from "../../../../src/core/ports.js";
import { client } from "../../api.js";
import { InlineError } from "../../components/feedback.js";
import { dateTime } from "../../format.js";
import { useResource } from "../../queries/resource.js";

/** Reloads a resource every `ms` while `on`. */
function useEvery(on: boolean, ms: number, reload: () => void): void {
  useEffect(() => {
    if (!on) return;
    const timer = setInterval(reload, ms);
    return () => clearInterval(timer);
  }, [on, ms, reload]);
}

function CopyLine({ text, label }: { text: string; label: string }) {
  const [copied, setCopied] = useState(false);
  const copy = () =>
    void navigator.clipboard
      ?.writeText(text)
      .then(() => {
        setCopied(true);
        setTimeout(() => setCopied(false), 1500);
      })
      .catch(() => undefined);
  return (
    <div className="copy-line">
      <code>{text}</code>
      <button type="button" className="button button-small" onClick={copy} aria-label={`Copy ${label}`}>
        {copied ? "Copied" : "Copy"}
      </button>
    </div>
  );
}

export function ConnectPanel({ environment }: { environment: Environment }) {
  const running = environment.state === "running";
  const account = useResource(
    () => (running ? client.account(environment.id) : Promise.resolve(undefined)),
    [environment.id, running],
  );
  const home = account.data?.home ?? "/";
  const host = `${environment.name}.cvm`;
  return (
    <section className="card" aria-labelledby="connect-title" data-testid="connect">
      <h2 id="connect-title">Connect</h2>
      <CopyLine text={`cvm ssh ${environment.name}`} label="the cvm ssh command" />
      <CopyLine text={`ssh ${host}`} label="the ssh command" />
      <p className="hint">
        <code>ssh {host}</code>, scp, rsync and VS Code work once <code>cvm config-ssh</code> has run on your machine. A
        stopped environment starts when you connect.
      </p>
      <a className="button" href={`vscode://vscode-remote/ssh-remote+${host}${home}`} data-testid="vscode-link">
        Open in VS Code
      </a>
      {account.data && (
        <p className="hint">
          You land as <strong>{account.data.name}</strong> in <code>{account.data.home}</code>
          {account.data.source === "no user in the image: root" ? " (the image has no user of its own)" : ""}.
        </p>
      )}
    </section>
  );
}

const gib = (bytes: number) =>
  bytes < 2 ** 30 ? `${Math.round(bytes / 2 ** 20)} MiB` : `${(bytes / 2 ** 30).toFixed(1)} GiB`;

function Meter({ label, used, limit, text }: { label: string; used: number; limit?: number; text: string }) {
  const share = limit ? Math.min(1, used / limit) : 0;
  return (
    <div className="meter-row">
      <span className="meter-label">{label}</span>
      <meter min={0} max={1} value={share} aria-label={label} />
      <span className="meter-text">{text}</span>
    </div>
  );
}

export function UsagePanel({ environment }: { environment: Environment }) {
  const running = environment.state === "running";
  const usage = useResource(
    () => (running ? client.usage(environment.id) : Promise.resolve(undefined)),
    [environment.id, running],
  );
  useEvery(running, 5000, usage.reload);
  const u = usage.data;
  return (
    <section className="card" aria-labelledby="usage-title" data-testid="usage">
      <h2 id="usage-title">Usage</h2>
      {!running && <p className="hint">Measured while the environment runs.</p>}
      {running && !u && !usage.error && <p className="hint">Measuring…</p>}
      <InlineError error={usage.error} />
      {u && (
        <div className="meters">
          <Meter
            label="CPU"
            used={u.cpu.cores}
            limit={u.cpu.limitCores}
            text={`${u.cpu.cores} of ${u.cpu.limitCores ?? "unlimited"} cores`}
          />
          <Meter
            label="Memory"
            used={u.memory.usedBytes}
            limit={u.memory.limitBytes}
            text={`${gib(u.memory.usedBytes)} of ${u.memory.limitBytes ? gib(u.memory.limitBytes) : "unlimited"}`}
          />
          {u.disks.map((d) => (
            <Meter
              key={d.path}
              label={`Disk ${d.path}`}
              used={d.usedBytes}
              limit={d.sizeBytes}
              text={`${gib(d.usedBytes)} of ${gib(d.sizeBytes)}`}
            />
          ))}
        </div>
      )}
    </section>
  );
}

const shareLabels: Record<PortShare, string> = {
  private: "Only me",
  authenticated: "Signed-in users",
  public: "Anyone",
};

function PortRow({
  environment,
  port,
  mine,
  publicPorts,
  onChange,
}: {
  environment: Environment;
  port: PortInfo;
  mine: boolean;
  publicPorts: boolean;
  onChange: () => void;
}) {
  const [error, setError] = useState<unknown>();
  const share = async (next: PortShare) => {
    setError(undefined);
    try {
      await client.setPortShare(environment.id, port.port, { share: next });
      onChange();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <tr data-testid={`port-${port.port}`}>
      <td className="mono">{port.port}</td>
      <td className="mono">{port.listening ? port.addresses.join(", ") : "not listening"}</td>
      <td>
        {mine ? (
          <select
            value={port.share}
            aria-label={`Who may open port ${port.port}`}
            onChange={(event) => void share(event.target.value as PortShare)}
          >
            {(Object.keys(shareLabels) as PortShare[]).map((level) => (
              <option key={level} value={level} disabled={level === "public" && !publicPorts}>
                {shareLabels[level]}
              </option>
            ))}
          </select>
        ) : (
          shareLabels[port.share]
        )}
        <InlineError error={error} />
      </td>
      <td>
        {port.listening && (
          <a href={port.hostUrl ?? port.path} target="_blank" rel="noreferrer">
            Open
          </a>
        )}
      </td>
    </tr>
  );
}

export function PortsPanel({ environment, userId }: { environment: Environment; userId: string }) {
  const running = environment.state === "running";
  const ports = useResource(() => client.ports(environment.id), [environment.id, running]);
  useEvery(running, 5000, ports.reload);
  const items = ports.data?.items ?? [];
  return (
    <section className="card" aria-labelledby="ports-title" data-testid="ports">
      <h2 id="ports-title">Ports</h2>
      <InlineError error={ports.error} />
      {items.length === 0 ? (
        <p className="hint">
          {running ? "Nothing listens on a TCP port inside yet." : "Listed while the environment runs."} From your
          machine: <code>cvm port-forward {environment.name} 8080</code>.
        </p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th>Port</th>
              <th>Listening on</th>
              <th>Shared with</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((port) => (
              <PortRow
                key={port.port}
                environment={environment}
                port={port}
                mine={environment.ownerId === userId}
                publicPorts={ports.data?.publicPorts ?? false}
                onChange={ports.reload}
              />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function IdlePanel({ environment }: { environment: Environment }) {
  const idle = useResource(() => client.idle(environment.id), [environment.id, environment.state]);
  useEvery(environment.state === "running", 30_000, idle.reload);
  const [error, setError] = useState<unknown>();
  const set = async (value: string) => {
    setError(undefined);
    try {
      idle.set(await client.setIdle(environment.id, value === "site" ? null : Number(value)));
    } catch (e) {
      setError(e);
    }
  };
  const status = idle.data;
  return (
    <section className="card" aria-labelledby="idle-title" data-testid="idle">
      <h2 id="idle-title">Idle stop</h2>
      {status && (
        <>
          <p data-testid="idle-summary">
            {status.minutes === 0
              ? "Never stops by itself."
              : status.stopsAt
                ? `Stops at ${dateTime(status.stopsAt)} unless used (after ${status.minutes} minutes without a terminal, SSH session or forwarded connection).`
                : `Stops after ${status.minutes} minutes without use.`}
          </p>
          <label>
            Idle time{" "}
            <select
              value={status.source === "site" ? "site" : String(status.minutes)}
              onChange={(event) => void set(event.target.value)}
              aria-label="Idle time"
            >
              <option value="site">The site's default</option>
              {[0, 30, 60, 120, 240, 480, 1440].map((m) => (
                <option key={m} value={m}>
                  {m === 0 ? "Never" : m < 60 ? `${m} minutes` : m === 60 ? "1 hour" : `${m / 60} hours`}
                </option>
              ))}
              {status.source === "environment" && ![0, 30, 60, 120, 240, 480, 1440].includes(status.minutes) && (
                <option value={status.minutes}>{status.minutes} minutes</option>
              )}
            </select>
          </label>
        </>
      )}
      <InlineError error={error ?? idle.error} />
    </section>
  );
}
