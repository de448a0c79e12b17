/**
 * A new environment. The CVM option exists only while an admin has CVMs
 * enabled; the API's `validations` land on the fields they name.
 */

import { type FormEvent, useState } from "react";
import { defaultResources, type EnvironmentSpec, specProblems } from "../../../../src/core/environment.js";
import { can } from "../../../../src/core/roles.js";
import type { EnvironmentLimits } from "../../../../src/core/settings.js";
import { client, fieldErrors, invalidFields } from "../../api.js";
import { InlineError } from "../../components/feedback.js";
import { Field } from "../../components/field.js";
import { PageHeader } from "../../components/shell.js";
import { environmentActions } from "../../queries/environments.js";
import { useResource } from "../../queries/resource.js";
import { Link, navigate } from "../../router.js";
import { useUser } from "../../session.js";

/**
 * Whether CVMs may be created now, and the size limits where this user may
 * read them: admins and managers read the settings, others the public setup status.
 */
function useCvmEnabled() {
  const user = useUser();
  return useResource(
    (): Promise<{ cvmEnabled: boolean; limits?: EnvironmentLimits }> =>
      can(user.role, "settings:read")
        ? client.infrastructure().then((s) => ({ cvmEnabled: s.cvmEnabled, limits: s.limits }))
        : client.setupStatus().then((s) => ({ cvmEnabled: s.cvmEnabled ?? false })),
    [user.role],
  );
}

/** Limits that refuse only what no limit allows: a member's form checks that much, the server the rest. */
const anyLimits: EnvironmentLimits = {
  minCpu: Number.MIN_VALUE,
  maxCpu: Number.POSITIVE_INFINITY,
  minMemoryGiB: Number.MIN_VALUE,
  maxMemoryGiB: Number.POSITIVE_INFINITY,
  minDiskGiB: Number.MIN_VALUE,
  maxDiskGiB: Number.POSITIVE_INFINITY,
  pids: 0,
};

/** The spec's problems by field, as the server would find them; sizes against the limits when known. */
function specFieldProblems(spec: EnvironmentSpec, limits: EnvironmentLimits | undefined): Record<string, string> {
  const problems = specProblems(spec, limits ?? anyLimits).map((v) =>
    !limits && /^must be at least/.test(v.detail) ? { ...v, detail: "must be more than 0" } : v,
  );
  return Object.fromEntries(problems.map((v) => [v.field, v.detail]));
}

const numberOrNaN = (text: string) => (text.trim() === "" ? Number.NaN : Number(text));

export function CreateEnvironmentPage() {
  const cvmEnabled = useCvmEnabled();
  const [name, setName] = useState("");
  const [image, setImage] = useState("");
  const [cpu, setCpu] = useState(String(defaultResources.cpu));
  const [memory, setMemory] = useState(String(defaultResources.memoryGiB));
  const [disk, setDisk] = useState(String(defaultResources.diskGiB));
  const [cvm, setCvm] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const fields = fieldErrors(error);
  const offerCvm = cvmEnabled.data?.cvmEnabled === true;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const spec: EnvironmentSpec = {
      name: name.trim(),
      image: image.trim(),
      cpu: numberOrNaN(cpu),
      memoryGiB: numberOrNaN(memory),
      diskGiB: numberOrNaN(disk),
      cvm: offerCvm && cvm,
    };
    const problems = invalidFields(specFieldProblems(spec, cvmEnabled.data?.limits));
    setError(problems);
    if (problems) return;
    setBusy(true);
    try {
      const created = await environmentActions.create(spec);
      navigate(`/environments/${created.id}`);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };

  const unplaced = Object.keys(fields).filter((f) => !["name", "image", "cpu", "memoryGiB", "diskGiB"].includes(f));

  return (
    <>
      <PageHeader title="New environment" lead="Choose an image and the resources it may use." />
      <form className="card form form-wide" onSubmit={submit} noValidate aria-label="New environment">
        <Field id="env-name" label="Name" error={fields.name} hint="Lowercase letters, digits and '-', like web-dev.">
          {(props) => (
            <input
              {...props}
              autoComplete="off"
              spellCheck={false}
              value={name}
              onChange={(e) => setName(e.target.value)}
            />
          )}
        </Field>
        <Field
          id="env-image"
          label="Image"
          error={fields.image}
          hint="An OCI image reference, such as registry.example.com/team/devbox:latest."
        >
          {(props) => (
            <input
              {...props}
              className="mono"
              autoComplete="off"
              spellCheck={false}
              value={image}
              onChange={(e) => setImage(e.target.value)}
            />
          )}
        </Field>
        <div className="form-row">
          <Field id="env-cpu" label="CPUs" error={fields.cpu}>
            {(props) => (
              <input
                {...props}
                type="number"
                min="0.25"
                step="0.25"
                value={cpu}
                onChange={(e) => setCpu(e.target.value)}
              />
            )}
          </Field>
          <Field id="env-memory" label="Memory (GiB)" error={fields.memoryGiB}>
            {(props) => (
              <input
                {...props}
                type="number"
                min="0.25"
                step="0.25"
                value={memory}
                onChange={(e) => setMemory(e.target.value)}
              />
            )}
          </Field>
          <Field id="env-disk" label="Disk (GiB)" error={fields.diskGiB}>
            {(props) => (
              <input {...props} type="number" min="1" step="1" value={disk} onChange={(e) => setDisk(e.target.value)} />
            )}
          </Field>
        </div>
        {offerCvm && (
          <div className={fields.cvm ? "field field-invalid" : "field"}>
            <label className="checkbox">
              <input
                type="checkbox"
                checked={cvm}
                onChange={(e) => setCvm(e.target.checked)}
                aria-describedby="env-cvm-hint"
              />
              Container-based VM
            </label>
            <p className="hint" id="env-cvm-hint">
              Runs systemd as PID 1 and its own Docker inside, while root in it stays an unprivileged user on the node.
            </p>
            {fields.cvm && <p className="field-error">{fields.cvm}</p>}
          </div>
        )}
        {(Object.keys(fields).length === 0 || unplaced.length > 0) && <InlineError error={error} />}
        <div className="actions">
          <Link to="/environments" className="button">
            Cancel
          </Link>
          <button type="submit" className="button button-primary" disabled={busy}>
            {busy ? "Creating…" : "Create environment"}
          </button>
        </div>
      </form>
    </>
  );
}
