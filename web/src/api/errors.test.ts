import { describe, expect, it } from "vitest";
import { ApiError, NetworkError, describeError, errorFromBody, fieldError } from "./errors";

describe("error bodies", () => {
  it("reads the API's {error: {code, message, details}}", () => {
    const error = errorFromBody(400, {
      error: { code: "validation_error", message: "invalid request", details: { "address.country": "must be DE-like" } },
    });
    expect(error).toMatchObject({ status: 400, code: "validation_error", message: "invalid request" });
    expect(error.details).toEqual({ "address.country": "must be DE-like" });
  });

  it("reads OAuth2's {error, error_description}", () => {
    const error = errorFromBody(400, { error: "invalid_grant", error_description: "refresh token reuse detected" });
    expect(error).toMatchObject({ code: "invalid_grant", message: "refresh token reuse detected" });
  });

  it("copes with a body that is not JSON or not the API's", () => {
    expect(errorFromBody(502, null)).toMatchObject({ code: "http_502", status: 502 });
    expect(errorFromBody(404, "<html>")).toMatchObject({ code: "http_404" });
    expect(errorFromBody(400, { error: { code: "x" } }).details).toEqual({});
  });

  it("keeps non-field details raw (e.g. a 503's service)", () => {
    const error = errorFromBody(503, {
      error: { code: "service_unavailable", message: "down", details: { service: "orders", reason: "circuit_open" } },
    });
    expect(error.rawDetails).toEqual({ service: "orders", reason: "circuit_open" });
  });
});

describe("messages for people", () => {
  const cases: [string, number, RegExp][] = [
    ["cancellation_window_closed", 409, /cancellation window has closed/],
    ["not_found", 404, /could not find/i],
    ["insufficient_scope", 403, /not allowed/],
    ["invalid_token", 401, /sign in again/],
    ["rate_limited", 429, /Too many requests/],
    ["service_unavailable", 503, /unavailable/],
    ["unsupported_media_type", 415, /JPEG, PNG or WebP/],
    ["image_too_large", 413, /too large/],
    ["invalid_image", 422, /not an image/],
  ];
  it.each(cases)("explains %s", (code, status, pattern) => {
    expect(describeError(new ApiError(status, code, "server text")).message).toMatch(pattern);
  });

  it("points a validation error with field details at the fields, else says the server's words", () => {
    expect(describeError(new ApiError(400, "validation_error", "invalid", { name: "too long" })).message).toMatch(
      /fields need attention/,
    );
    expect(describeError(new ApiError(400, "validation_error", "an Idempotency-Key header is required")).message).toBe(
      "An Idempotency-Key header is required.",
    );
  });

  it("uses the server's message for a code it does not know, and for a conflict", () => {
    expect(describeError(new ApiError(400, "brand_new_code", "the widget is upside down")).message).toBe(
      "The widget is upside down.",
    );
    expect(describeError(new ApiError(409, "conflict", "the order is already cancelled")).message).toBe(
      "The order is already cancelled.",
    );
  });

  it("says a lost connection is one, and offers to retry what may pass", () => {
    expect(describeError(new NetworkError()).message).toMatch(/offline|connection/);
    expect(describeError(new NetworkError()).network).toBe(true);
    expect(describeError(new NetworkError("slow", true)).message).toMatch(/too long/);
    expect(describeError(new NetworkError()).retryable).toBe(true);
    expect(describeError(new ApiError(503, "service_unavailable", "x")).retryable).toBe(true);
    expect(describeError(new ApiError(400, "validation_error", "x")).retryable).toBe(false);
    expect(describeError(new Error("boom")).message).toMatch(/unexpected/);
  });

  it("gives validation errors to their fields", () => {
    const fields = describeError(
      new ApiError(400, "validation_error", "invalid", { phone: "must be E.164", "items.1.quantity": "too many" }),
    ).fields;
    expect(fieldError(fields, "phone")).toBe("must be E.164");
    expect(fieldError(fields, "items.1")).toBe("too many");
    expect(fieldError(fields, "name")).toBeUndefined();
  });
});
