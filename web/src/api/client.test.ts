import { describe, expect, it, vi } from "vitest";
import { ApiClient, ApiError, NetworkError, type TokenSource } from "./client";
import { connection } from "./connection";

interface Call {
  url: string;
  init: RequestInit;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** A fake fetch answering from a list (a function entry may throw, like a lost connection). */
function fakeFetch(answers: (Response | (() => Response))[]) {
  const calls: Call[] = [];
  const fetch = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    const next = answers.shift();
    if (!next) throw new Error("no more answers");
    return typeof next === "function" ? next() : next;
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, calls };
}

function header(call: Call, name: string): string | undefined {
  return (call.init.headers as Record<string, string>)[name];
}

function client(answers: (Response | (() => Response))[], extra: Partial<ConstructorParameters<typeof ApiClient>[0]> = {}) {
  const { fetch, calls } = fakeFetch(answers);
  const waits: number[] = [];
  const api = new ApiClient({
    fetch,
    baseUrl: "http://api.test",
    random: () => 0.5,
    sleep: async (ms) => {
      waits.push(ms);
    },
    now: () => Date.parse("2026-12-02T10:00:00Z"),
    policy: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 5000 },
    ...extra,
  });
  return { api, calls, waits };
}

const lost = () => {
  throw new TypeError("Failed to fetch");
};

describe("ApiClient", () => {
  it("returns parsed JSON and builds the query string", async () => {
    const { api, calls } = client([json(200, { items: [], next_cursor: null })]);
    const page = await api.get("/v1/products", { query: { q: "mug", cursor: undefined, limit: 12 } });
    expect(page).toEqual({ items: [], next_cursor: null });
    expect(calls[0].url).toBe("http://api.test/v1/products?q=mug&limit=12");
    expect(calls[0].init.method).toBe("GET");
  });

  it("throws ApiError with the body's code, message, details and Retry-After", async () => {
    const body = { error: { code: "validation_error", message: "invalid request", details: { phone: "must be E.164" } } };
    const { api } = client([json(400, body)]);
    const error = await api.patch("/v1/users/me", { body: { phone: "1" } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 400, code: "validation_error", message: "invalid request" });
    expect((error as ApiError).details).toEqual({ phone: "must be E.164" });
  });

  it("retries 503 honouring Retry-After, with the same Idempotency-Key and body", async () => {
    const unavailable = { error: { code: "service_unavailable", message: "down", details: null } };
    const { api, calls, waits } = client([
      json(503, unavailable, { "Retry-After": "2" }),
      json(429, { error: { code: "rate_limited", message: "slow down", details: null } }, {
        "Retry-After": "Wed, 02 Dec 2026 10:00:01 GMT",
      }),
      json(202, { id: "o1", status: "pending" }),
    ]);
    const order = await api.post("/v1/orders", { body: { items: [] }, idempotencyKey: "key-1" });
    expect(order).toEqual({ id: "o1", status: "pending" });
    expect(calls).toHaveLength(3);
    expect(calls.map((call) => header(call, "Idempotency-Key"))).toEqual(["key-1", "key-1", "key-1"]);
    expect(new Set(calls.map((call) => call.init.body)).size).toBe(1);
    expect(waits).toEqual([2000, 1000]);
  });

  it("backs off with jitter when there is no Retry-After, and stops after maxAttempts", async () => {
    const unavailable = () => json(503, { error: { code: "unavailable", message: "busy", details: null } });
    const { api, calls, waits } = client([unavailable(), unavailable(), unavailable(), unavailable(), unavailable()]);
    const error = await api.get("/v1/products").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(503);
    expect(calls).toHaveLength(4);
    expect(waits).toEqual([50, 100, 200]);
  });

  it("does not retry a 409 or a 400", async () => {
    const { api, calls } = client([json(409, { error: { code: "conflict", message: "no", details: null } })]);
    await expect(api.post("/v1/orders/x/cancel")).rejects.toMatchObject({ code: "conflict" });
    expect(calls).toHaveLength(1);
  });

  it("retries a lost connection for a GET and for a POST with an Idempotency-Key", async () => {
    const get = client([lost, json(200, { ok: true })]);
    await expect(get.api.get("/v1/orders")).resolves.toEqual({ ok: true });
    expect(get.calls).toHaveLength(2);

    const post = client([lost, json(202, { id: "o1" })]);
    await expect(post.api.post("/v1/orders", { body: {}, idempotencyKey: "k" })).resolves.toEqual({ id: "o1" });
    expect(post.calls.map((call) => header(call, "Idempotency-Key"))).toEqual(["k", "k"]);
  });

  it("does not repeat a POST without a key after a lost connection, and reports it", async () => {
    const { api, calls } = client([lost, json(200, {})]);
    await expect(api.post("/v1/orders/x/cancel")).rejects.toBeInstanceOf(NetworkError);
    expect(calls).toHaveLength(1);
    expect(connection.current).toBe("lost");
    const again = client([json(200, {})]);
    await again.api.get("/healthz");
    expect(connection.current).toBe("online");
  });

  it("sends the access token and, on 401 invalid_token, refreshes once and repeats", async () => {
    let token = "old";
    const tokens: TokenSource = {
      accessToken: () => token,
      refresh: vi.fn(async () => {
        token = "new";
        return true;
      }),
    };
    const expired = { error: { code: "invalid_token", message: "expired", details: null } };
    const { api, calls } = client([json(401, expired), json(200, { id: "me" })], { tokens });
    await expect(api.get("/v1/users/me")).resolves.toEqual({ id: "me" });
    expect(tokens.refresh).toHaveBeenCalledTimes(1);
    expect(calls.map((call) => header(call, "Authorization"))).toEqual(["Bearer old", "Bearer new"]);
  });

  it("gives up after one refresh", async () => {
    const tokens: TokenSource = { accessToken: () => "t", refresh: vi.fn(async () => true) };
    const expired = () => json(401, { error: { code: "invalid_token", message: "expired", details: null } });
    const { api, calls } = client([expired(), expired(), expired()], { tokens });
    await expect(api.get("/v1/users/me")).rejects.toMatchObject({ status: 401, code: "invalid_token" });
    expect(tokens.refresh).toHaveBeenCalledTimes(1);
    expect(calls).toHaveLength(2);
  });

  it("uploads a file's raw bytes with its content type", async () => {
    const { api, calls } = client([json(201, { id: "p1", images: [] })]);
    const file = new File([new Uint8Array([1, 2, 3])], "a.png", { type: "image/png" });
    await api.upload("/v1/products/p1/images", file);
    expect(header(calls[0], "Content-Type")).toBe("image/png");
    expect(calls[0].init.body).toBe(file);
    expect(calls[0].init.method).toBe("POST");
  });

  it("abandons an attempt that gets no answer in time, and retries it when that is harmless", async () => {
    const hang = (_url: RequestInfo | URL, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
      });
    let calls = 0;
    const fetch = (async (url: RequestInfo | URL, init?: RequestInit) => {
      calls += 1;
      return calls === 1 ? hang(url, init) : json(200, { ok: true });
    }) as typeof globalThis.fetch;
    const { api } = client([], { fetch });
    await expect(api.get("/v1/orders/1", { timeoutMs: 5 })).resolves.toEqual({ ok: true });
    expect(calls).toBe(2);

    const never = client([], { fetch: hang as typeof globalThis.fetch });
    await expect(never.api.post("/v1/orders/1/cancel", { timeoutMs: 5 })).rejects.toThrow("took too long");
  });

  it("stops at once when the caller aborts", async () => {
    const controller = new AbortController();
    const fetch = ((_url: RequestInfo | URL, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(new DOMException("Aborted", "AbortError")));
      })) as typeof globalThis.fetch;
    const { api, waits } = client([], { fetch });
    const pending = api.get("/v1/products", { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    expect(waits).toEqual([]);
  });

  it("answers undefined for 204", async () => {
    const { api } = client([new Response(null, { status: 204 })]);
    await expect(api.delete("/v1/x")).resolves.toBeUndefined();
  });
});
