/**
 * Manage > Admin > Infrastructure > Warm pools: booted CVMs kept ready per
 * image and size, what each pool holds now (ready, being built, failed), what
 * they hold of the machine (and what it has: the pools may not hold more), and a form to set a pool (a count of 0 removes it).
 * Polls while members are being built, so the counts fill in as they boot.
 */

import { type FormEvent, useEffect, useState } from "react";
import type { PoolsStatus } from "../../../../src/api/contract.js";
import { fieldErrors } from "../../api.js";
import { ErrorState, InlineError, Loading } from "../../components/feedback.js";
import { Field } from "../../components/field.js";
import { setPool, usePools } from "../../queries/pools.js";

type Draft = { image: string; cpu: string; memoryGiB: string; diskGiB: string; count: string };
const empty: Draft = { image: "", cpu: "", memoryGiB: "", diskGiB: "", count: "1" };

/** A pool's validation names its place in the list (`pools.2.cpu`); the form has one pool, so the field is enough. */
function formErrors(error: unknown): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const [field, detail] of Object.entries(fieldErrors(error))) errors[field.replace(/^pools\.\d+\./, "")] = detail;
  return errors;
}

const number = (text: string) => (text.trim() === "" ? undefined : Number(text));

function PoolsTable({ status, remove, busy }: { status: PoolsStatus; remove: (key: string) => void; busy: boolean }) {
  if (status.pools.length === 0) return <p className="muted">No warm pools: every CVM is built when it is created.</p>;
  return (
    <table className="table responsive" aria-label="Warm pools">
      <thead>
        <tr>
          <th scope="col">Image</th>
          <th scope="col">Size</th>
          <th scope="col">Count</th>
          <th scope="col">Ready</th>
          <th scope="col">Being built</th>
          <th scope="col">Failed</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        {status.pools.map((pool) => (
          <tr key={pool.key} data-pool={pool.image}>
            <td data-label="Image" className="mono small">
              {pool.image}
            </td>
            <td data-label="Size">
              {pool.cpu} CPU, {pool.memoryGiB} GiB, disk {pool.diskGiB} GiB
            </td>
            <td data-label="Count">{pool.count}</td>
            <td data-label="Ready">{pool.ready}</td>
            <td data-label="Being built">{pool.filling}</td>
            <td data-label="Failed">{pool.failed}</td>
            <td data-label="Actions">
              <button
                type="button"
                className="button button-small button-danger-outline"
                disabled={busy}
                onClick={() => remove(pool.key)}
                aria-label={`Remove the pool of ${pool.image}`}
              >
                Remove
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function WarmPools() {
  const pools = usePools();
  const [draft, setDraft] = useState<Draft>(empty);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const building = (pools.data?.pools ?? []).some((p) => p.filling > 0 || p.ready < p.count);

  useEffect(() => {
    if (!building) return;
    const timer = setInterval(pools.reload, 3000);
    return () => clearInterval(timer);
  }, [building, pools.reload]);

  const apply = async (request: Parameters<typeof setPool>[0]) => {
    setBusy(true);
    setError(undefined);
    try {
      pools.set(await setPool(request));
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const saved = await apply({
      image: draft.image.trim(),
      cpu: number(draft.cpu),
      memoryGiB: number(draft.memoryGiB),
      diskGiB: number(draft.diskGiB),
      count: Number(draft.count),
    });
    if (saved) setDraft(empty);
  };

  const remove = (key: string) => {
    const pool = pools.data?.pools.find((p) => p.key === key);
    if (pool)
      void apply({ image: pool.image, cpu: pool.cpu, memoryGiB: pool.memoryGiB, diskGiB: pool.diskGiB, count: 0 });
  };

  const fields = formErrors(error);
  const held = pools.data?.held;
  const capacity = pools.data?.capacity;
  return (
    <section className="card" aria-labelledby="pools-title">
      <h2 id="pools-title">Warm pools</h2>
      <p className="muted">
        Booted CVMs kept ready per image and size. Creating a CVM of the image that fits (the same disk, no more CPUs or
        memory) claims one instead of building it, and the pool refills in the background. Each waiting CVM holds its
        CPUs, memory and disk.
      </p>
      {pools.data && !pools.data.supported && (
        <p className="notice" role="status">
          This server's provider keeps no warm pools: pools set here take effect with the docker provider.
        </p>
      )}
      {pools.data ? (
        <PoolsTable status={pools.data} remove={remove} busy={busy} />
      ) : pools.error ? (
        <ErrorState title="Could not load the warm pools" error={pools.error} retry={pools.reload} />
      ) : (
        <Loading what="warm pools" />
      )}
      {held && held.cvms > 0 && (
        <p className="small" data-pools-held>
          {held.cvms === 1 ? "1 warm CVM holds" : `${held.cvms} warm CVMs hold`} {held.cpu}{" "}
          {held.cpu === 1 ? "CPU" : "CPUs"}, {held.memoryGiB} GiB memory and {held.diskGiB} GiB disk
          {capacity ? ` of the engine's machine's ${capacity.cpu} CPUs and ${capacity.memoryGiB} GiB memory` : ""}.
        </p>
      )}
      {capacity && (
        <p className="small muted" data-pools-capacity>
          Pooled CVMs count against capacity: the pools may hold at most {capacity.cpu} CPUs and {capacity.memoryGiB}{" "}
          GiB memory in all.
        </p>
      )}
      <form className="form form-wide" onSubmit={(e) => void submit(e)} aria-label="Set a warm pool" noValidate>
        <h3>Set a pool</h3>
        <Field id="pool-image" label="Image" error={fields.image}>
          {(props) => (
            <input
              {...props}
              className="mono"
              value={draft.image}
              placeholder="registry.example.com/team/dev:latest"
              onChange={(e) => setDraft({ ...draft, image: e.target.value })}
            />
          )}
        </Field>
        <div className="form-row form-row-3">
          {(
            [
              ["cpu", "CPUs"],
              ["memoryGiB", "Memory (GiB)"],
              ["diskGiB", "Disk (GiB)"],
            ] as const
          ).map(([key, label]) => (
            <Field key={key} id={`pool-${key}`} label={label} error={fields[key]} hint="Empty: a create's default">
              {(props) => (
                <input
                  {...props}
                  type="number"
                  step="0.25"
                  value={draft[key]}
                  onChange={(e) => setDraft({ ...draft, [key]: e.target.value })}
                />
              )}
            </Field>
          ))}
        </div>
        <Field
          id="pool-count"
          label="CVMs to keep ready"
          error={fields.count ?? fields.pools}
          hint="0 removes the pool"
        >
          {(props) => (
            <input
              {...props}
              type="number"
              min={0}
              step={1}
              value={draft.count}
              onChange={(e) => setDraft({ ...draft, count: e.target.value })}
            />
          )}
        </Field>
        <InlineError error={error} />
        <div className="actions">
          <button type="submit" className="button button-primary" disabled={busy || draft.image.trim() === ""}>
            {busy ? "Saving…" : "Save pool"}
          </button>
        </div>
      </form>
    </section>
  );
}
