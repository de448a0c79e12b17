/**
 * While an environment builds: its steps as a list, each done one with how
 * long it took, the current one with its time so far, the rest to come, so
 * the page says what is happening from the first second.
 */

import type { Environment } from "../../../../src/core/environment.js";
import { duration } from "../../format.js";
import { type BuildStep, buildSteps } from "./build-steps.js";

const marks: Record<BuildStep["status"], string> = { done: "✓", current: "", failed: "✕", pending: "" };

export function BuildProgress({ environment, now }: { environment: Environment; now: number }) {
  const steps = buildSteps(environment, now);
  if (steps.length === 0) return null;
  return (
    <section className="card" aria-labelledby="progress-title">
      <h2 id="progress-title">Build progress</h2>
      <ol className="build-steps" data-testid="build-steps">
        {steps.map((step) => (
          <li key={step.state} className={`build-step build-step-${step.status}`} data-step={step.state}>
            <span className="build-step-mark" aria-hidden="true">
              {step.status === "current" ? <span className="spinner" /> : marks[step.status]}
            </span>
            <span className="build-step-label">
              {step.label}
              <span className="visually-hidden"> ({step.status})</span>
            </span>
            <span className="build-step-time">{step.ms === undefined ? "" : duration(step.ms)}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
