/**
 * Loading data in a component: `useApi(load, deps)` runs `load(signal)` when
 * `deps` change, aborts the previous run, and gives `{value, error, loading,
 * reload}`. A page renders its loading, error (with `reload` as "Try again")
 * and empty states from these. A load that failed for want of an answer is
 * run again by itself when the connection comes back.
 */

import { useCallback, useEffect, useRef, useState, useSyncExternalStore, type DependencyList } from "react";
import { connection } from "../api/connection";
import { NetworkError } from "../api/errors";

export interface ApiState<T> {
  value: T | undefined;
  error: unknown;
  loading: boolean;
  /** Runs the load again (keeps the current value until the new one arrives). */
  reload: () => void;
  /** Replaces the value (after a successful change, e.g. a PATCH's answer). */
  setValue: (value: T) => void;
}

export function useApi<T>(load: (signal: AbortSignal) => Promise<T>, deps: DependencyList): ApiState<T> {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [generation, setGeneration] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    setError(null);
    loadRef.current(controller.signal).then(
      (result) => {
        if (controller.signal.aborted) return;
        setValue(result);
        setLoading(false);
      },
      (failure: unknown) => {
        if (controller.signal.aborted) return;
        setError(failure);
        setLoading(false);
      },
    );
    return () => controller.abort();
  }, [...deps, generation]);

  const reload = useCallback(() => setGeneration((n) => n + 1), []);

  // Recovers by itself: the connection is back, so try what failed for want of it.
  const online = useSyncExternalStore(connection.subscribe, connection.getSnapshot, connection.getSnapshot) === "online";
  const wasOnline = useRef(online);
  useEffect(() => {
    const cameBack = online && !wasOnline.current;
    wasOnline.current = online;
    if (cameBack && error instanceof NetworkError) reload();
  }, [online, error, reload]);
  return { value, error, loading, reload, setValue };
}
