/**
 * The one way the app talks to Agora's API.
 *
 * ```ts
 * const page = await api.get<ProductPage>("/v1/products", { query: { q: "mug" } });
 * const order = await api.post<Order>("/v1/orders", { body, idempotencyKey });
 * await api.upload("/v1/products/ID/images", file); // raw bytes, the file's type
 * ```
 *
 * - Answers are parsed JSON (undefined for 204). An error answer throws an
 *   {@link ApiError} (status, code, message, field `details`, retryAfter); no
 *   answer at all throws a {@link NetworkError}.
 * - 503 and 429 are retried with exponential backoff and full jitter, honouring
 *   `Retry-After`; a lost connection is retried for idempotent methods and for
 *   POSTs that carry an `Idempotency-Key` (the same key on every attempt).
 *   Bounded by {@link DEFAULT_RETRY_POLICY}.
 * - The access token (from the auth session, see src/auth/session.ts) goes in
 *   `Authorization`; a 401 `invalid_token` refreshes the session once and
 *   repeats the request.
 * - An attempt that gets no answer within 30 s (`timeoutMs`) is abandoned and
 *   handled like a lost connection, so a hung request never stalls a page.
 * - Every answer or lost connection is reported to the connection monitor
 *   (src/api/connection.ts), which drives the "connection lost" banner.
 *
 * The base URL is `import.meta.env.VITE_API_BASE_URL` (make web-dev points it at
 * the gateway) or, by default, the page's own origin (the gateway serves the app).
 */

import { connection } from "./connection";
import { ApiError, NetworkError, errorFromBody } from "./errors";
import {
  DEFAULT_RETRY_POLICY,
  type RetryPolicy,
  nextDelay,
  parseRetryAfter,
  shouldRetry,
  sleep,
} from "./retry";

export { ApiError, NetworkError } from "./errors";

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RequestOptions {
  /** A JSON body (serialised here), or a Blob/File sent as is by `upload`. */
  body?: unknown;
  /** Query parameters; undefined, null and "" values are left out. */
  query?: Record<string, string | number | boolean | null | undefined>;
  /** Extra headers. */
  headers?: Record<string, string>;
  /** Sent as `Idempotency-Key`; the same on every retry of this call. */
  idempotencyKey?: string;
  /** Aborts the request and any wait between attempts. */
  signal?: AbortSignal;
  /** false: send no access token (public endpoints work either way). */
  auth?: boolean;
  /** Overrides the retry policy (e.g. `{maxAttempts: 1}` for no retry). */
  retry?: Partial<RetryPolicy>;
  /** Gives up on one attempt after this long (ms); then as a lost connection. */
  timeoutMs?: number;
}

/** One attempt waits at most this long for an answer (a hung request never stalls a page). */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** What the client needs from the auth session; set by src/auth at start-up. */
export interface TokenSource {
  /** The current access token, or null when signed out. */
  accessToken(): string | null;
  /** Refreshes the tokens (single-flight); resolves true when a new access token is there. */
  refresh(): Promise<boolean>;
}

/** The client's collaborators, replaceable in tests. */
export interface ClientDeps {
  fetch: typeof fetch;
  baseUrl: string;
  tokens: TokenSource | null;
  random: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  now: () => number;
  policy: RetryPolicy;
}

/** The API's base URL: VITE_API_BASE_URL or the page's origin (no trailing slash). */
export function apiBaseUrl(): string {
  const configured = (import.meta.env.VITE_API_BASE_URL as string | undefined) ?? "";
  if (configured) return configured.replace(/\/+$/, "");
  return typeof window !== "undefined" ? window.location.origin : "";
}

/** `path` (absolute URLs kept) with `query` appended. */
export function buildUrl(baseUrl: string, path: string, query?: RequestOptions["query"]): string {
  const url = /^https?:\/\//.test(path) ? path : `${baseUrl}${path}`;
  if (!query) return url;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    params.set(key, String(value));
  }
  const text = params.toString();
  if (!text) return url;
  return url + (url.includes("?") ? "&" : "?") + text;
}

async function readBody(response: Response): Promise<unknown> {
  if (response.status === 204 || response.status === 205) return undefined;
  const text = await response.text();
  if (!text) return undefined;
  const type = response.headers.get("Content-Type") ?? "";
  if (type.includes("json")) {
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }
  return text;
}

/** An API client bound to its collaborators; the app uses the shared {@link api}. */
export class ApiClient {
  deps: ClientDeps;

  constructor(deps: Partial<ClientDeps> = {}) {
    this.deps = {
      fetch: (...args) => globalThis.fetch(...args),
      baseUrl: apiBaseUrl(),
      tokens: null,
      random: Math.random,
      sleep,
      now: () => Date.now(),
      policy: DEFAULT_RETRY_POLICY,
      ...deps,
    };
  }

  /** Connects the auth session (its token and its refresh). */
  setTokenSource(tokens: TokenSource | null): void {
    this.deps.tokens = tokens;
  }

  get<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("GET", path, options);
  }

  post<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("POST", path, options);
  }

  put<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("PUT", path, options);
  }

  patch<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("PATCH", path, options);
  }

  delete<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("DELETE", path, options);
  }

  /**
   * POSTs a file's raw bytes with its own content type (the image upload:
   * `POST /v1/products/{id}/images`). Not retried after a lost connection
   * (a POST without an Idempotency-Key), but retried on 503/429.
   */
  upload<T = unknown>(path: string, file: Blob, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("POST", path, {
      // A few megabytes over a slow link take longer than an API call.
      timeoutMs: 120_000,
      ...options,
      body: file,
      headers: { "Content-Type": file.type || "application/octet-stream", ...options.headers },
    });
  }

  /** One call: attempts, retries and the refresh on an expired token. */
  async request<T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
    const { fetch: doFetch, baseUrl } = this.deps;
    const policy = { ...this.deps.policy, ...options.retry };
    const url = buildUrl(baseUrl, path, options.query);
    const hasKey = Boolean(options.idempotencyKey);
    let refreshed = false;
    let retry = 0;

    for (;;) {
      const attempt = withTimeout(options.signal, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      const init = { ...this.init(method, options), signal: attempt.signal };
      let response: Response;
      try {
        response = await doFetch(url, init);
      } catch (error) {
        attempt.done();
        if (options.signal?.aborted) throw error;
        if (!attempt.timedOut()) {
          if (isAbort(error)) throw error;
          connection.reportFailure();
        }
        if (retry + 1 < policy.maxAttempts && shouldRetry(null, method, hasKey)) {
          await this.deps.sleep(nextDelay(retry, null, policy, this.deps.random), options.signal);
          retry += 1;
          continue;
        }
        throw attempt.timedOut() ? new NetworkError("Agora took too long to answer", true) : new NetworkError();
      }
      connection.reportSuccess();
      let body: unknown;
      try {
        body = await readBody(response);
      } finally {
        attempt.done();
      }
      if (response.ok) return body as T;

      const retryAfter = parseRetryAfter(response.headers.get("Retry-After"), this.deps.now());
      const error = errorFromBody(response.status, body, retryAfter);

      if (
        response.status === 401 &&
        error.code === "invalid_token" &&
        !refreshed &&
        options.auth !== false &&
        this.deps.tokens?.accessToken()
      ) {
        refreshed = true;
        if (await this.deps.tokens.refresh()) continue;
      }
      if (retry + 1 < policy.maxAttempts && shouldRetry(response.status, method, hasKey)) {
        await this.deps.sleep(nextDelay(retry, retryAfter, policy, this.deps.random), options.signal);
        retry += 1;
        continue;
      }
      throw error;
    }
  }

  private init(method: Method, options: RequestOptions): RequestInit {
    const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
    let body: BodyInit | undefined;
    if (options.body instanceof Blob) {
      body = options.body;
    } else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers["Content-Type"] = "application/json";
    }
    if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
    const token = options.auth === false ? null : this.deps.tokens?.accessToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    return { method, headers, body, credentials: "omit", cache: "no-store" };
  }
}

/**
 * A signal for one attempt: aborted by the caller's signal or after `ms`.
 * `done()` clears the timer; `timedOut()` says which of the two fired.
 */
function withTimeout(outer: AbortSignal | undefined, ms: number) {
  const controller = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort(new DOMException("The request timed out", "TimeoutError"));
  }, ms);
  const onAbort = () => controller.abort(outer?.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  else outer?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => expired,
    done: () => {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
    },
  };
}

function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

/** The app's client (its token source is connected by src/auth/session.ts). */
export const api = new ApiClient();
