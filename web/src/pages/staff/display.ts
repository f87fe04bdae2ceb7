/**
 * Pure display helpers of the ops pages: JSON for people, how long ago a
 * heartbeat was, a breaker state in words, queue figures that may be unknown.
 */

/** A JSON value as people read it: indented, keys in their order; text that is JSON too. */
export function prettyJson(value: unknown): string {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  const text = JSON.stringify(value, null, 2);
  return text === undefined ? String(value) : text;
}

/** "4 s ago", "3 min ago", "2 h ago", "5 d ago" from an ISO time and now (ms). */
export function ago(iso: string | null | undefined, now: number): string {
  if (!iso) return "—";
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const seconds = Math.round((now - at) / 1000);
  if (seconds < 0) return seconds > -5 ? "just now" : "in the future (clock skew)";
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

/** The gateway's breaker state ("closed", "half_open", "open") in words. */
export function breakerText(state: string): string {
  return state === "half_open" ? "half-open" : state;
}

/** The badge kind of a breaker state: closed is fine, open is not, half-open is trying. */
export function breakerKind(state: string): "ok" | "bad" | "wait" {
  if (state === "closed") return "ok";
  if (state === "open") return "bad";
  return "wait";
}

/** A count the broker may not know (null): "unknown". */
export function countText(value: number | null | undefined): string {
  return value === null || value === undefined ? "unknown" : String(value);
}

/** Milliseconds between automatic refreshes of the services view. */
export const SERVICES_REFRESH_MS = 10_000;
