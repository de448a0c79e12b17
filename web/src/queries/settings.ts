import { useCallback, useEffect, useState } from "react";
import type { CheckResult, CheckStatus, InfrastructureSettingsUpdate } from "../../../src/api/contract.js";
import { client } from "../api.js";
import { useResource } from "./resource.js";

export const useInfrastructure = () => useResource(() => client.infrastructure(), []);
export const updateInfrastructure = (update: InfrastructureSettingsUpdate) => client.updateInfrastructure(update);

export interface CheckRun {
  /** The results so far, in order. */
  checks: CheckResult[];
  /** The check running now. */
  running?: { id: string; title: string; note?: string };
  /** Set once every check has run. */
  worst?: CheckStatus;
  error?: unknown;
  reload(): void;
}

/** The infrastructure checks as they run: each result as it comes, and which check is running meanwhile. */
export function useInfrastructureChecks(): CheckRun {
  const [run, setRun] = useState<Omit<CheckRun, "reload">>({ checks: [] });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    void generation;
    const controller = new AbortController();
    setRun({ checks: [] });
    (async () => {
      let done = false;
      for await (const progress of client.infrastructureChecksProgress(controller.signal)) {
        done ||= progress.type === "done";
        setRun((current) => {
          if (progress.type === "running") return { ...current, running: { id: progress.id, title: progress.title } };
          if (progress.type === "note") {
            const running = current.running?.id === progress.id ? current.running : undefined;
            return running ? { ...current, running: { ...running, note: progress.text } } : current;
          }
          if (progress.type === "result") return { checks: [...current.checks, progress.check] };
          return { checks: current.checks, worst: progress.worst };
        });
      }
      if (!done) throw new Error("The checks stopped before the last one ended; run them again.");
    })().catch((error: unknown) => {
      if (!controller.signal.aborted) setRun((current) => ({ ...current, running: undefined, error }));
    });
    return () => controller.abort();
  }, [generation]);
  const reload = useCallback(() => setGeneration((n) => n + 1), []);
  return { ...run, reload };
}
