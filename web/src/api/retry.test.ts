import { describe, expect, it } from "vitest";
import {
  DEFAULT_RETRY_POLICY,
  backoffDelay,
  isIdempotent,
  nextDelay,
  parseRetryAfter,
  shouldRetry,
} from "./retry";

describe("Retry-After", () => {
  const now = Date.parse("2026-12-02T10:00:00Z");

  it("reads delta-seconds", () => {
    expect(parseRetryAfter("3", now)).toBe(3000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
  });

  it("reads an HTTP date relative to now, and a past date as now", () => {
    expect(parseRetryAfter("Wed, 02 Dec 2026 10:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("Wed, 02 Dec 2026 09:59:00 GMT", now)).toBe(0);
  });

  it("ignores what it cannot read", () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
    expect(parseRetryAfter("", now)).toBeNull();
    expect(parseRetryAfter("soon", now)).toBeNull();
  });
});

describe("backoff with full jitter", () => {
  const policy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000 };

  it("stays within [0, min(max, base * 2^retry))", () => {
    for (let retry = 0; retry < 8; retry += 1) {
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
      expect(backoffDelay(retry, policy, () => 0)).toBe(0);
      const top = backoffDelay(retry, policy, () => 0.999999);
      expect(top).toBeLessThan(ceiling);
      expect(top).toBeGreaterThanOrEqual(ceiling - 1);
    }
  });

  it("grows exponentially until the cap", () => {
    const half = () => 0.5;
    expect(backoffDelay(0, policy, half)).toBe(50);
    expect(backoffDelay(1, policy, half)).toBe(100);
    expect(backoffDelay(2, policy, half)).toBe(200);
    expect(backoffDelay(10, policy, half)).toBe(500);
  });

  it("spreads clients apart (random, not fixed)", () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(3, policy)));
    expect(delays.size).toBeGreaterThan(10);
  });

  it("honours Retry-After over the backoff, capped at the maximum", () => {
    expect(nextDelay(0, 2000, { ...policy, maxDelayMs: 10_000 }, () => 0)).toBe(2000);
    expect(nextDelay(0, 60_000, policy, () => 0)).toBe(1000);
    expect(nextDelay(2, null, policy, () => 0.5)).toBe(200);
  });

  it("has bounded defaults", () => {
    expect(DEFAULT_RETRY_POLICY.maxAttempts).toBeGreaterThan(1);
    expect(DEFAULT_RETRY_POLICY.maxAttempts).toBeLessThanOrEqual(6);
  });
});

describe("which failures are retried", () => {
  it("retries 503 and 429 for any method", () => {
    for (const method of ["GET", "POST", "PATCH", "DELETE"]) {
      expect(shouldRetry(503, method, false)).toBe(true);
      expect(shouldRetry(429, method, false)).toBe(true);
    }
  });

  it("does not retry other errors", () => {
    for (const status of [400, 401, 403, 404, 409, 422, 500, 502]) {
      expect(shouldRetry(status, "GET", false)).toBe(false);
    }
  });

  it("retries a lost connection only when repeating is harmless", () => {
    expect(shouldRetry(null, "GET", false)).toBe(true);
    expect(shouldRetry(null, "PUT", false)).toBe(true);
    expect(shouldRetry(null, "DELETE", false)).toBe(true);
    expect(shouldRetry(null, "POST", false)).toBe(false);
    expect(shouldRetry(null, "PATCH", false)).toBe(false);
    expect(shouldRetry(null, "POST", true)).toBe(true);
    expect(isIdempotent("post", true)).toBe(true);
  });
});
