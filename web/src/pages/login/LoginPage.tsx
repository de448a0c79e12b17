import { type FormEvent, useState } from "react";
import { fieldErrors } from "../../api.js";
import { InlineError } from "../../components/feedback.js";
import { Field } from "../../components/field.js";
import { useSession } from "../../session.js";
import { AuthCard } from "./AuthCard.js";

export function LoginPage({ message }: { message?: string }) {
  const { login } = useSession();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const fields = fieldErrors(error);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await login({ email, password });
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };

  return (
    <AuthCard title="Sign in">
      {message && (
        <p className="notice" role="status">
          {message}
        </p>
      )}
      <form onSubmit={submit} className="form" noValidate>
        <Field id="login-email" label="Email" error={fields.email}>
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
        <Field id="login-password" label="Password" error={fields.password}>
          {(props) => (
            <input
              {...props}
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          )}
        </Field>
        {Object.keys(fields).length === 0 && <InlineError error={error} />}
        <button type="submit" className="button button-primary button-block" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </AuthCard>
  );
}
