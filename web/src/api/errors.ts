/**
 * The errors a request can end in, and what each means to a person.
 *
 * Agora's API answers every error as `{"error": {"code", "message", "details"}}`
 * (gateway/errors.py); its OAuth2 endpoints (/oauth/*) as RFC 6749
 * `{"error", "error_description"}`. Both become an {@link ApiError}; a request
 * that got no answer at all becomes a {@link NetworkError}.
 */

/** Field path (e.g. "items.0.quantity", "phone") to the problem with it. */
export type FieldErrors = Record<string, string>;

/** An HTTP answer that is not a success. */
export class ApiError extends Error {
  /** The HTTP status (400, 404, 409, 503, ...). */
  readonly status: number;
  /** The API's error code: the body's `error.code` (or OAuth2's `error`). */
  readonly code: string;
  /** Field errors of a `validation_error` (an empty object otherwise). */
  readonly details: FieldErrors;
  /** The raw `details` value, whatever its shape (e.g. `{service, reason}`). */
  readonly rawDetails: unknown;
  /** The server's Retry-After in ms, when it sent one. */
  readonly retryAfter: number | null;

  constructor(
    status: number,
    code: string,
    message: string,
    details: unknown = null,
    retryAfter: number | null = null,
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.rawDetails = details;
    this.details = fieldErrors(details);
    this.retryAfter = retryAfter;
  }
}

/** No answer: the connection was lost, the server is unreachable, or CORS refused. */
export class NetworkError extends Error {
  /** No answer within the client's time limit (rather than a refused or broken connection). */
  readonly timedOut: boolean;

  constructor(message = "no answer from Agora", timedOut = false) {
    super(message);
    this.name = "NetworkError";
    this.timedOut = timedOut;
  }
}

function fieldErrors(details: unknown): FieldErrors {
  const fields: FieldErrors = {};
  if (details && typeof details === "object" && !Array.isArray(details)) {
    for (const [key, value] of Object.entries(details as Record<string, unknown>)) {
      if (typeof value === "string") fields[key] = value;
      else if (Array.isArray(value)) fields[key] = value.map(String).join("; ");
    }
  }
  return fields;
}

/**
 * An {@link ApiError} from an error answer's status, headers and body (parsed
 * JSON, or null when the body was not JSON).
 */
export function errorFromBody(status: number, body: unknown, retryAfter: number | null = null): ApiError {
  if (body && typeof body === "object") {
    const error = (body as { error?: unknown }).error;
    if (error && typeof error === "object") {
      const { code, message, details } = error as { code?: unknown; message?: unknown; details?: unknown };
      return new ApiError(
        status,
        typeof code === "string" ? code : `http_${status}`,
        typeof message === "string" ? message : defaultMessage(status),
        details ?? null,
        retryAfter,
      );
    }
    if (typeof error === "string") {
      // RFC 6749 5.2 (the /oauth/* endpoints).
      const description = (body as { error_description?: unknown }).error_description;
      return new ApiError(
        status,
        error,
        typeof description === "string" ? description : error,
        null,
        retryAfter,
      );
    }
  }
  return new ApiError(status, `http_${status}`, defaultMessage(status), null, retryAfter);
}

function defaultMessage(status: number): string {
  if (status >= 500) return "the server failed to answer";
  return `the request failed (HTTP ${status})`;
}

/** What a person is told about an error: a sentence, and field errors to show beside their fields. */
export interface ErrorDescription {
  /** A short sentence for the alert. */
  message: string;
  /** Field path -> problem, for `aria-describedby` next to each field. */
  fields: FieldErrors;
  /** Whether trying again later may work (offers a "Try again" button). */
  retryable: boolean;
  /** No answer came (a lost connection or a time-out): the connection banner says so too. */
  network?: boolean;
}

// Messages for the codes Agora's API defines (services/chassis/errors.py,
// gateway/errors.py, gateway/auth/guard.py, gateway/limits.py, the media API).
const MESSAGES: Record<string, string> = {
  validation_error: "Some fields need attention.",
  invalid_json: "The request could not be read. Please try again.",
  not_found: "We could not find that. It may have been removed.",
  unknown_sku: "That product is not sold here (unknown SKU).",
  conflict: "That cannot be done now: it conflicts with the current state.",
  cancellation_window_closed:
    "This order can no longer be cancelled: its cancellation window has closed. Contact support for a refund.",
  invalid_credentials: "Wrong email or password.",
  invalid_grant: "Your session has ended. Please sign in again.",
  invalid_token: "Your session has ended. Please sign in again.",
  insufficient_scope: "You are not allowed to do that with this account.",
  user_required: "Please sign in as a customer to do that.",
  rate_limited: "Too many requests. Please wait a moment and try again.",
  unavailable: "Agora is busy right now. Please try again in a moment.",
  service_unavailable: "Part of Agora is unavailable right now. Please try again in a moment.",
  service_timeout: "Agora took too long to answer. Please try again.",
  bulkhead_full: "Agora is very busy right now. Please try again in a moment.",
  upstream_error: "Something went wrong on our side. Please try again.",
  internal_error: "Something went wrong on our side. Please try again.",
  unsupported_media_type: "That file type is not supported (use JPEG, PNG or WebP).",
  image_too_large: "That image is too large.",
  invalid_image: "That file is not an image we can read, or it is far too large in pixels.",
  request_entity_too_large: "That upload is too large.",
  payload_too_large: "That upload is too large.",
  method_not_allowed: "That action is not available.",
  access_denied: "Sign-in was cancelled.",
  invalid_scope: "Sign-in asked for permissions this account cannot have.",
  web_not_built: "The storefront has not been built yet.",
  invalid_request: "The request was not understood. Please try again.",
  invalid_client: "This app is not registered with Agora's sign-in.",
  unauthorized: "Please sign in to do that.",
  forbidden: "You are not allowed to do that.",
  bad_request: "The request was not understood. Please try again.",
};

const RETRYABLE_CODES = new Set([
  "rate_limited",
  "unavailable",
  "service_unavailable",
  "service_timeout",
  "bulkhead_full",
  "upstream_error",
  "internal_error",
]);

/**
 * The sentence and field errors to show for any thrown value: an ApiError by
 * its code (the server's own message where we have none of ours), a lost
 * connection as such, anything else as an unexpected error.
 */
export function describeError(error: unknown): ErrorDescription {
  if (error instanceof ApiError) {
    const fields = error.details;
    let message = MESSAGES[error.code];
    if (error.code === "validation_error" && Object.keys(fields).length === 0) {
      // No per-field details: the server's message says what is wrong.
      message = capitalise(error.message);
    }
    if (error.code === "conflict" && error.message) message = capitalise(error.message);
    if (!message) message = error.message ? capitalise(error.message) : "The request failed.";
    return {
      message,
      fields,
      retryable: RETRYABLE_CODES.has(error.code) || error.status >= 500 || error.status === 429,
    };
  }
  if (error instanceof NetworkError) {
    const message = error.timedOut
      ? "Agora took too long to answer. Please try again."
      : "You are offline or the connection was lost. Please check your connection.";
    return { message, fields: {}, retryable: true, network: true };
  }
  if (error instanceof DOMException && error.name === "AbortError") {
    return { message: "The request was cancelled.", fields: {}, retryable: true };
  }
  return { message: "Something unexpected went wrong.", fields: {}, retryable: true };
}

function capitalise(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return trimmed;
  const sentence = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
}

/**
 * The field error for a form field: its exact path, or the first error under
 * it (`items` matches `items.0.quantity`).
 */
export function fieldError(fields: FieldErrors, name: string): string | undefined {
  if (fields[name]) return fields[name];
  const prefix = `${name}.`;
  for (const [key, value] of Object.entries(fields)) {
    if (key.startsWith(prefix)) return value;
  }
  return undefined;
}
