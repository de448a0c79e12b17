import { type FormEvent, useState } from "react";
import { emailProblem, passwordProblem } from "../../../../src/core/user.js";
import { fieldErrors, invalidFields } from "../../api.js";
import { InlineError } from "../../components/feedback.js";
import { Field } from "../../components/field.js";
import { useSession } from "../../session.js";
import { AuthCard } from "./AuthCard.js";

/** A fresh install: the first account becomes the site admin. */
export function FirstRunPage() {
  const { createFirstAdmin } = useSession();
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [setupCode, setSetupCode] = useState("");
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
      await createFirstAdmin({ email, password, name: name || undefined, setupCode });
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };

  return (
    <AuthCard
      title="Welcome to cvm"
      lead="This install has no accounts yet. Create the first one: it becomes the site admin, who can invite others and enable container-based VMs."
    >
      <form onSubmit={submit} className="form" noValidate>
        <Field
          id="setup-code"
          label="Setup code"
          error={fields.setupCode}
          hint="Printed in the server's log when it started: the line “first-run setup code”."
        >
          {(props) => (
            <input
              {...props}
              autoComplete="off"
              spellCheck={false}
              required
              value={setupCode}
              onChange={(e) => setSetupCode(e.target.value)}
            />
          )}
        </Field>
        <Field id="setup-name" label="Your name" error={fields.name}>
          {(props) => <input {...props} autoComplete="name" value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <Field id="setup-email" label="Email" error={fields.email}>
          {(props) => (
            <input
              {...props}
              type="email"
              autoComplete="username"
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
            />
          )}
        </Field>
        <Field id="setup-password" label="Password" error={fields.password} hint="At least 8 characters.">
          {(props) => (
            <input
              {...props}
              type="password"
              autoComplete="new-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          )}
        </Field>
        {Object.keys(fields).length === 0 && <InlineError error={error} />}
        <button type="submit" className="button button-primary button-block" disabled={busy}>
          {busy ? "Creating…" : "Create admin account"}
        </button>
      </form>
    </AuthCard>
  );
}
