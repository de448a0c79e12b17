/**
 * A new environment. The CVM option exists only while an admin has CVMs
 * enabled; the API's `validations` land on the fields they name.
 */

import { type FormEvent, useState } from "react";
import { defaultResources } from "../../../../src/core/environment.js";
import { can } from "../../../../src/core/roles.js";
import { client, fieldErrors } from "../../api.js";
import { InlineError } from "../../components/feedback.js";
import { Field } from "../../components/field.js";
import { PageHeader } from "../../components/shell.js";
import { environmentActions } from "../../queries/environments.js";
import { useResource } from "../../queries/resource.js";
import { Link, navigate } from "../../router.js";
import { useUser } from "../../session.js";

/** Whether CVMs may be created now: admins read the settings, others the public setup status. */
function useCvmEnabled() {
  const user = useUser();
  return useResource(
    () =>
      can(user.role, "settings:read")
        ? client.infrastructure().then((s) => s.cvmEnabled)
        : client.setupStatus().then((s) => s.cvmEnabled ?? false),
    [user.role],
  );
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
  const offerCvm = cvmEnabled.data === true;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const created = await environmentActions.create({
        name: name.trim(),
        image: image.trim(),
        cpu: numberOrNaN(cpu),
        memoryGiB: numberOrNaN(memory),
        diskGiB: numberOrNaN(disk),
        cvm: offerCvm && cvm,
      });
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
