/**
 * One request's lifecycle for a page: loading, data or error, and reload.
 * Enough for this dashboard; live data comes from the events stream instead.
 */

import { useCallback, useEffect, useRef, useState } from "react";

export type Resource<T> =
  | { status: "loading"; data?: undefined; error?: undefined }
  | { status: "error"; data?: T; error: unknown }
  | { status: "ready"; data: T; error?: undefined };

export function useResource<T>(
  load: () => Promise<T>,
  deps: readonly unknown[],
): Resource<T> & { reload: () => void; set: (data: T) => void } {
  const [resource, setResource] = useState<Resource<T>>({ status: "loading" });
  const [generation, setGeneration] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  // biome-ignore lint/correctness/useExhaustiveDependencies: the caller names what the request depends on
  useEffect(() => {
    let cancelled = false;
    setResource((current) => (current.status === "ready" ? current : { status: "loading" }));
    loadRef.current().then(
      (data) => !cancelled && setResource({ status: "ready", data }),
      (error: unknown) => !cancelled && setResource((current) => ({ status: "error", data: current.data, error })),
    );
    return () => {
      cancelled = true;
    };
  }, [...deps, generation]);

  const reload = useCallback(() => setGeneration((n) => n + 1), []);
  const set = useCallback((data: T) => setResource({ status: "ready", data }), []);
  return { ...resource, reload, set };
}
