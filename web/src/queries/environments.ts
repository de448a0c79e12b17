/**
 * Environments, kept live: the list and single environments are read once,
 * then kept current from the shared events stream. Changes are merged by
 * `version`, so a late list answer never rolls an environment back.
 */

import { useCallback, useEffect, useRef, useState } from "react";
import type { CreateEnvironmentRequest } from "../../../src/api/contract.js";
import type { Environment } from "../../../src/core/environment.js";
import { client } from "../api.js";
import { type LiveStatus, subscribeEnvironmentEvents } from "./events.js";

const newer = (a: Environment | undefined, b: Environment) => !a || b.version >= a.version;

/** Marks for the render benchmark (bench/web): when the list's data arrived. */
export const listMarks = {
  data: "cvm:environments:data",
  /** React has put the rows in the DOM (before layout and paint). */
  committed: "cvm:environments:committed",
  rendered: "cvm:environments:rendered",
} as const;

export interface LiveEnvironments {
  items?: Environment[];
  error?: unknown;
  live: LiveStatus;
  reload(): void;
}

/** `owner` "me" lists `userId`'s own; the events stream of an admin carries everyone's, so it is filtered too. */
export function useEnvironmentList(owner: "me" | "all", userId: string): LiveEnvironments {
  const [byId, setById] = useState<Map<string, Environment>>();
  const [error, setError] = useState<unknown>();
  const [live, setLive] = useState<LiveStatus>("connecting");
  const deleted = useRef(new Set<string>());
  const [generation, setGeneration] = useState(0);

  const merge = useCallback((incoming: Environment[], replace: boolean) => {
    setById((current) => {
      const next = new Map(replace ? [] : current);
      for (const environment of incoming) {
        if (deleted.current.has(environment.id)) continue;
        const known = current?.get(environment.id);
        next.set(environment.id, known && !newer(known, environment) ? known : environment);
      }
      return next;
    });
  }, []);

  useEffect(() => {
    void generation;
    let cancelled = false;
    const read = () =>
      client.listEnvironments({ owner }).then(
        (list) => {
          if (cancelled) return;
          if (!performance.getEntriesByName(listMarks.data).length) performance.mark(listMarks.data);
          setError(undefined);
          merge(list.items, true);
        },
        (e: unknown) => !cancelled && setError(e),
      );
    void read();
    const unsubscribe = subscribeEnvironmentEvents({
      onStatus: setLive,
      onOpen: () => void read(),
      onEvent: (event) => {
        if (event.type === "deleted") {
          deleted.current.add(event.id);
          setById((current) => {
            if (!current?.has(event.id)) return current;
            const next = new Map(current);
            next.delete(event.id);
            return next;
          });
        } else if (event.type === "environment") {
          if (owner === "me" && event.environment.ownerId !== userId) return;
          if (event.environment.state === "deleted") deleted.current.add(event.environment.id);
          setById((current) => {
            const known = current?.get(event.environment.id);
            if (!newer(known, event.environment)) return current;
            const next = new Map(current);
            if (event.environment.state === "deleted") next.delete(event.environment.id);
            else next.set(event.environment.id, event.environment);
            return next;
          });
        }
      },
    });
    return () => {
      cancelled = true;
      unsubscribe();
    };
  }, [owner, userId, merge, generation]);

  const items = byId ? [...byId.values()] : undefined;
  return { items, error, live, reload: () => setGeneration((n) => n + 1) };
}

export interface LiveEnvironment {
  environment?: Environment;
  error?: unknown;
  gone: boolean;
  live: LiveStatus;
  /** Put an answer from an action in place until the stream catches up. */
  accept(environment: Environment): void;
}

export function useEnvironment(ref: string): LiveEnvironment {
  const [environment, setEnvironment] = useState<Environment>();
  const [error, setError] = useState<unknown>();
  const [gone, setGone] = useState(false);
  const [live, setLive] = useState<LiveStatus>("connecting");

  const accept = useCallback((next: Environment) => {
    setEnvironment((current) => (newer(current, next) ? next : current));
  }, []);

  useEffect(() => {
    let cancelled = false;
    let id: string | undefined;
    setEnvironment(undefined);
    setError(undefined);
    setGone(false);
    const read = () =>
      client.environment(ref).then(
        (found) => {
          if (cancelled) return;
          id = found.id;
          setError(undefined);
          accept(found);
        },
        (e: unknown) => !cancelled && setError(e),
      );
    void read();
    const unsubscribe = subscribeEnvironmentEvents({
      onStatus: setLive,
      onOpen: () => void read(),
      onEvent: (event) => {
        if (event.type === "deleted" && event.id === id) setGone(true);
        if (event.type === "environment" && (event.environment.id === id || event.environment.id === ref)) {
          id = event.environment.id;
          if (event.environment.state === "deleted") setGone(true);
          accept(event.environment);
        }
      },
    });
    return () => {
      cancelled = true;
      unsubscribe();
    };
  }, [ref, accept]);

  return { environment, error, gone, live, accept };
}

export const environmentActions = {
  create: (request: CreateEnvironmentRequest) => client.createEnvironment(request),
  start: (ref: string) => client.startEnvironment(ref),
  stop: (ref: string) => client.stopEnvironment(ref),
  rebuild: (ref: string, keepDockerData: boolean, image?: string) =>
    client.rebuildEnvironment(ref, { keepDockerData, ...(image ? { image } : {}) }),
  remove: (ref: string, keepHome: boolean) => client.deleteEnvironment(ref, { keepHome }),
};
