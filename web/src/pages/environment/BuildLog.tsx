/**
 * The build log, streaming while it grows. If the stream drops it resumes
 * after the last line it saw; a new build (rebuild) starts a fresh log. After
 * the build, the environment's later changes (a stop) still add lines to its
 * log: each change of the environment reads them, and the status says where
 * the environment is now, not only how its build ended.
 */

import { useEffect, useRef, useState } from "react";
import type { BuildLogLine } from "../../../../src/core/build.js";
import type { Environment } from "../../../../src/core/environment.js";
import { ApiError, client, describeError } from "../../api.js";
import { time } from "../../format.js";

type Phase = "connecting" | "streaming" | "ended" | "reconnecting" | "error";

export function BuildLog({ environment }: { environment: Pick<Environment, "id" | "buildId" | "state" | "version"> }) {
  const { id: environmentRef, buildId, state, version } = environment;
  const [lines, setLines] = useState<BuildLogLine[]>([]);
  const [phase, setPhase] = useState<Phase>("connecting");
  const [outcome, setOutcome] = useState<string>();
  const [problem, setProblem] = useState<string>();
  const box = useRef<HTMLPreElement>(null);
  const pinned = useRef(true);
  const lastSeq = useRef<number>(undefined);

  useEffect(() => {
    const controller = new AbortController();
    lastSeq.current = undefined;
    setLines([]);
    setOutcome(undefined);
    setPhase("connecting");
    (async () => {
      for (let failures = 0; !controller.signal.aborted; ) {
        try {
          const stream = client.logs(environmentRef, {
            build: buildId ?? "latest",
            after: lastSeq.current,
            follow: true,
            signal: controller.signal,
          });
          setPhase("streaming");
          let batch: BuildLogLine[] = [];
          // Lines come in bursts; render them a frame at a time.
          const flush = () => {
            if (batch.length === 0) return;
            const taken = batch;
            batch = [];
            setLines((current) => current.concat(taken));
          };
          for await (const item of stream) {
            failures = 0;
            if ("end" in item) {
              flush();
              setOutcome(item.outcome ?? "ended");
              setPhase("ended");
              break;
            }
            lastSeq.current = item.seq;
            if (batch.length === 0) requestAnimationFrame(flush);
            batch.push(item);
          }
          flush();
          return;
        } catch (error) {
          if (controller.signal.aborted) return;
          if (error instanceof ApiError && error.status < 500) {
            setProblem(describeError(error));
            setPhase("error");
            return;
          }
          failures++;
          setPhase("reconnecting");
          await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** failures, 10_000)));
        }
      }
    })();
    return () => controller.abort();
  }, [environmentRef, buildId]);

  // Once the build has ended, each change of the environment may have logged more (stopping, stopped).
  useEffect(() => {
    void version;
    if (phase !== "ended") return;
    const controller = new AbortController();
    (async () => {
      const added: BuildLogLine[] = [];
      const stream = client.logs(environmentRef, {
        build: buildId ?? "latest",
        after: lastSeq.current,
        signal: controller.signal,
      });
      for await (const item of stream) if (!("end" in item)) added.push(item);
      if (controller.signal.aborted || added.length === 0) return;
      lastSeq.current = added[added.length - 1].seq;
      setLines((current) => {
        const last = current.at(-1)?.seq ?? 0;
        return current.concat(added.filter((line) => line.seq > last));
      });
    })().catch(() => undefined);
    return () => controller.abort();
  }, [environmentRef, buildId, version, phase]);

  useEffect(() => {
    void lines;
    const element = box.current;
    if (element && pinned.current) element.scrollTop = element.scrollHeight;
  }, [lines]);

  return (
    <div className="log-wrap">
      <div className="log-status" role="status" aria-live="polite">
        {phase === "connecting" && "Connecting to the log…"}
        {phase === "streaming" && "Streaming live"}
        {phase === "reconnecting" && "Connection lost, resuming…"}
        {phase === "ended" &&
          (outcome === state
            ? `Build finished: ${outcome}`
            : `Build finished: ${outcome}; the environment is ${state} now`)}
        {phase === "error" && `The log is not available: ${problem}`}
      </div>
      <pre
        ref={box}
        className="log"
        data-testid="build-log"
        role="log"
        aria-label="Build log"
        onScroll={(event) => {
          const el = event.currentTarget;
          pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {lines.length === 0 && phase !== "error" ? (
          <span className="log-empty">No log lines yet.</span>
        ) : (
          lines.map((line) => (
            <span key={line.seq} className="log-line">
              <span className="log-time">{time(line.at)}</span>
              {line.text}
              {"\n"}
            </span>
          ))
        )}
      </pre>
    </div>
  );
}
