/**
 * When and how long to wait before retrying a request: pure functions, so the
 * policy is tested without a network or a clock.
 *
 * The seeds ask clients to "handle retries": 503 (a service down or its
 * circuit open) and 429 (rate limited) are retried with exponential backoff
 * and full jitter, and a server's `Retry-After` (seconds or an HTTP date) is
 * honoured. A request whose outcome is unknown (the connection was lost) is
 * retried only when repeating it is harmless: an idempotent method, or a POST
 * that carries an `Idempotency-Key` (the server answers a replay with the
 * first result).
 */

export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  maxAttempts: number;
  /** The backoff's base delay (ms): attempt n waits up to base * 2^n. */
  baseDelayMs: number;
  /** No wait is longer than this (ms), a server's Retry-After included. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 300,
  maxDelayMs: 10_000,
};

/** Statuses that mean "try again later": the request was not carried out. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 503]);

const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/** Whether repeating this request cannot do the work twice. */
export function isIdempotent(method: string, hasIdempotencyKey: boolean): boolean {
  return IDEMPOTENT_METHODS.has(method.toUpperCase()) || hasIdempotencyKey;
}

/**
 * Whether a failed attempt is worth another one.
 * `status` is the HTTP status, or null when no answer came (network error).
 */
export function shouldRetry(
  status: number | null,
  method: string,
  hasIdempotencyKey: boolean,
): boolean {
  if (status === null) return isIdempotent(method, hasIdempotencyKey);
  // 429 and 503 say the request was not processed: any method may repeat it.
  return RETRYABLE_STATUSES.has(status);
}

/**
 * The delay a `Retry-After` header asks for, in ms, or null when absent or
 * unreadable. It is either delta-seconds ("3") or an HTTP date (RFC 9110
 * 10.2.3); a date in the past means "now" (0).
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | null {
  if (value == null) return null;
  const text = value.trim();
  if (text === "") return null;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (/^-?\d+(\.\d+)?$/.test(text)) {
    // Not the RFC's form (delta-seconds is a non-negative integer), but clear enough.
    return Math.max(0, Number(text) * 1000);
  }
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}

/**
 * Exponential backoff with full jitter (a uniformly random wait between 0 and
 * min(max, base * 2^retry)), so that many clients do not retry in step.
 * `retry` counts from 0 (the wait before the second attempt).
 */
export function backoffDelay(
  retry: number,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  return Math.floor(random() * ceiling);
}

/**
 * The wait before the next attempt: the server's Retry-After when it gave one
 * (never less: it said when it can serve us), else the jittered backoff; both
 * capped at the policy's maximum.
 */
export function nextDelay(
  retry: number,
  retryAfterMs: number | null,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== null) return Math.min(policy.maxDelayMs, retryAfterMs);
  return backoffDelay(retry, policy, random);
}

/** A promise that resolves after `ms`, or rejects when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason ?? new DOMException("Aborted", "AbortError"));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(timer);
      reject(signal?.reason ?? new DOMException("Aborted", "AbortError"));
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
