/**
 * Environments, kept live: the list (a page at a time) and single
 * environments are read once, then kept current from the shared events
 * stream. Changes are merged by `version`, so a late list answer never rolls
 * an environment back.
 */

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { CreateEnvironmentRequest } from "../../../src/api/contract.js";
import type {
  Environment,
  EnvironmentKind,
  EnvironmentState,
  EnvironmentSummary,
} from "../../../src/core/environment.js";
import { client } from "../api.js";
import { type LiveStatus, subscribeEnvironmentEvents } from "./events.js";

const newer = (a: EnvironmentSummary | undefined, b: EnvironmentSummary) => !a || b.version >= a.version;

/** Marks for the render benchmark (bench/web): when the list's data arrived. */
export const listMarks = {
  data: "cvm:environments:data",
  /** React has put the rows in the DOM (before layout and paint). */
  committed: "cvm:environments:committed",
  rendered: "cvm:environments:rendered",
} as const;

export interface LiveEnvironments {
  /** Without timelines, as lists have them (an event's whole environment is one too). */
  items?: EnvironmentSummary[];
  error?: unknown;
  live: LiveStatus;
  reload(): void;
  /** Whether the server has more than is loaded, and how to load the next page. */
  hasMore: boolean;
  loadingMore: boolean;
  loadMore(): void;
}

/** What the server filters on; the name is a part of it. */
export interface EnvironmentListFilter {
  owner: "me" | "all";
  state?: EnvironmentState;
  kind?: EnvironmentKind;
  name?: string;
}

export const environmentPageSize = 100;
/** The largest page the API answers: a reconnect re-reads what was loaded in one request, up to this. */
const largestPage = 500;

/**
 * The environments the user may see, newest first, a page at a time, kept
 * live: `owner` "me" lists `userId`'s own (the events stream of an admin
 * carries everyone's, so it is filtered too). A change to a loaded one
 * replaces it; a new one is added when it falls within what is loaded (all of
 * it, or newer than the oldest row shown); the rest arrive with their page.
 */
export function useEnvironmentList(filter: EnvironmentListFilter, userId: string): LiveEnvironments {
  const [byId, setById] = useState<Map<string, EnvironmentSummary>>();
  const [cursor, setCursor] = useState<string>();
  const [error, setError] = useState<unknown>();
  const [live, setLive] = useState<LiveStatus>("connecting");
  const [loadingMore, setLoadingMore] = useState(false);
  const deleted = useRef(new Set<string>());
  const loaded = useRef({ count: 0, cursor: undefined as string | undefined, oldest: undefined as string | undefined });
  const [generation, setGeneration] = useState(0);
  const { owner, state, kind, name } = filter;
  const query = useMemo(() => ({ owner, state, kind, q: name || undefined }), [owner, state, kind, name]);

  const merge = useCallback((incoming: EnvironmentSummary[], replace: boolean, next: string | undefined) => {
    setById((current) => {
      const merged = new Map(replace ? [] : current);
      for (const environment of incoming) {
        if (deleted.current.has(environment.id)) continue;
        const known = current?.get(environment.id);
        merged.set(environment.id, known && !newer(known, environment) ? known : environment);
      }
      const oldest = incoming.at(-1)?.createdAt;
      loaded.current = {
        count: merged.size,
        cursor: next,
        oldest:
          replace || !loaded.current.oldest || (oldest && oldest < loaded.current.oldest)
            ? oldest
            : loaded.current.oldest,
      };
      return merged;
    });
    setCursor(next);
  }, []);

  useEffect(() => {
    void generation;
    let cancelled = false;
    // A new filter starts over from its first page; the rows shown stay until it arrives.
    loaded.current = { count: 0, cursor: undefined, oldest: undefined };
    // After a reconnect, what was loaded is read again in one request, so a long list does not shrink back.
    const read = () =>
      client
        .listEnvironments({
          ...query,
          limit: Math.min(largestPage, Math.max(environmentPageSize, loaded.current.count)),
        })
        .then(
          (page) => {
            if (cancelled) return;
            if (!performance.getEntriesByName(listMarks.data).length) performance.mark(listMarks.data);
            setError(undefined);
            merge(page.items, true, page.nextCursor);
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
          const environment = event.environment;
          if (owner === "me" && environment.ownerId !== userId) return;
          if (environment.state === "deleted") deleted.current.add(environment.id);
          setById((current) => {
            if (!current) return current;
            const known = current.get(environment.id);
            if (!newer(known, environment)) return current;
            const { cursor: more, oldest } = loaded.current;
            if (!known && more && oldest && environment.createdAt < oldest) return current;
            const next = new Map(current);
            if (environment.state === "deleted") next.delete(environment.id);
            else next.set(environment.id, environment);
            return next;
          });
        }
      },
    });
    return () => {
      cancelled = true;
      unsubscribe();
    };
  }, [query, owner, userId, merge, generation]);

  const loadMore = useCallback(() => {
    const after = loaded.current.cursor;
    if (!after || loadingMore) return;
    setLoadingMore(true);
    client
      .listEnvironments({ ...query, limit: environmentPageSize, cursor: after })
      .then(
        (page) => merge(page.items, false, page.nextCursor),
        (e: unknown) => setError(e),
      )
      .finally(() => setLoadingMore(false));
  }, [query, merge, loadingMore]);

  const items = byId ? [...byId.values()] : undefined;
  return {
    items,
    error,
    live,
    reload: () => setGeneration((n) => n + 1),
    hasMore: Boolean(cursor),
    loadingMore,
    loadMore,
  };
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
