/**
 * "You are offline" / "Connection lost": a banner (`role="alert"`) while the
 * browser is offline or requests get no answer. It goes away by itself: on the
 * browser's `online` event, or when a request answers again (the monitor is fed
 * by src/api/client.ts), and while the connection is lost it probes the
 * gateway's /healthz every few seconds so recovery shows without a click.
 */

import { useEffect, useSyncExternalStore } from "react";
import { apiBaseUrl } from "../api/client";
import { connection } from "../api/connection";

const PROBE_INTERVAL_MS = 5_000;

export function ConnectionBanner() {
  const state = useSyncExternalStore(connection.subscribe, connection.getSnapshot, connection.getSnapshot);

  useEffect(() => {
    const online = () => connection.setBrowserOnline(true);
    const offline = () => connection.setBrowserOnline(false);
    window.addEventListener("online", online);
    window.addEventListener("offline", offline);
    if (typeof navigator !== "undefined" && navigator.onLine === false) offline();
    return () => {
      window.removeEventListener("online", online);
      window.removeEventListener("offline", offline);
    };
  }, []);

  useEffect(() => {
    if (state !== "lost") return;
    const timer = setInterval(() => {
      fetch(`${apiBaseUrl()}/healthz`, { cache: "no-store" })
        .then(() => connection.reportSuccess())
        .catch(() => undefined);
    }, PROBE_INTERVAL_MS);
    return () => clearInterval(timer);
  }, [state]);

  if (state === "online") return null;
  return (
    <div className="banner" role="alert">
      {state === "offline"
        ? "You are offline. We will reconnect when your connection is back."
        : "Connection lost. Trying to reconnect…"}
    </div>
  );
}
