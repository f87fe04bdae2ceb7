import { describe, expect, it, vi } from "vitest";
import { AuthSession, jwtPayload, refreshDelay } from "./session";

function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => btoa(JSON.stringify(value)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${part({ alg: "RS256" })}.${part(claims)}.sig`;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function tokenAnswer(n: number, expiresIn = 300) {
  return {
    access_token: jwt({ sub: "user-1", scope: "profile orders:read", n }),
    token_type: "Bearer",
    expires_in: expiresIn,
    refresh_token: `refresh-${n}`,
    scope: "profile orders:read orders:write",
  };
}

/** A session with a fake fetch (answers given per call) and a fake timer. */
function setup(answers: (() => Response | Promise<Response>)[]) {
  const forms: URLSearchParams[] = [];
  const urls: string[] = [];
  const fetch = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    urls.push(String(url));
    forms.push(new URLSearchParams(String(init?.body ?? "")));
    const next = answers.shift();
    if (!next) throw new Error("unexpected request");
    return next();
  });
  const timers: { callback: () => void; ms: number; cleared: boolean }[] = [];
  let now = 1_000_000;
  const session = new AuthSession({
    fetch: fetch as unknown as typeof globalThis.fetch,
    baseUrl: "http://auth.test",
    clientId: "agora-web",
    now: () => now,
    setTimer: (callback, ms) => {
      // A timer that fired is done, like a real one.
      const timer = { callback: () => ((timer.cleared = true), callback()), ms, cleared: false };
      timers.push(timer);
      return timer;
    },
    clearTimer: (handle) => {
      (handle as { cleared: boolean }).cleared = true;
    },
  });
  const pending = () => timers.filter((timer) => !timer.cleared);
  return { session, fetch, forms, urls, timers, pending, advance: (ms: number) => (now += ms) };
}

describe("the code exchange", () => {
  it("posts the code, verifier, redirect URI and client id (no secret) and keeps the tokens in memory", async () => {
    const { session, forms, urls } = setup([() => json(200, tokenAnswer(1))]);
    const tokens = await session.exchangeCode("the-code", "the-verifier", "http://app.test/auth/callback");
    expect(urls[0]).toBe("http://auth.test/oauth/token");
    expect(Object.fromEntries(forms[0])).toEqual({
      grant_type: "authorization_code",
      code: "the-code",
      code_verifier: "the-verifier",
      redirect_uri: "http://app.test/auth/callback",
      client_id: "agora-web",
    });
    expect(tokens.scopes).toEqual(["profile", "orders:read", "orders:write"]);
    expect(tokens.userId).toBe("user-1");
    expect(session.hasScope("orders:write")).toBe(true);
    expect(session.hasScope("catalog:write")).toBe(false);
    expect(localStorage.length).toBe(0);
    expect(sessionStorage.length).toBe(0);
  });

  it("throws the OAuth error of a refused exchange", async () => {
    const { session } = setup([() => json(400, { error: "invalid_grant", error_description: "code_verifier does not match" })]);
    await expect(session.exchangeCode("c", "v", "r")).rejects.toMatchObject({ code: "invalid_grant", status: 400 });
    expect(session.tokens).toBeNull();
  });
});

describe("silent refresh", () => {
  it("is scheduled before the access token expires", async () => {
    const { session, pending } = setup([() => json(200, tokenAnswer(1, 300))]);
    await session.exchangeCode("c", "v", "r");
    expect(pending()).toHaveLength(1);
    expect(pending()[0].ms).toBe(240_000); // 300 s less 60 s
    expect(refreshDelay(60)).toBe(48_000); // 20% early for short lifetimes
    expect(refreshDelay(0)).toBe(1_000);
  });

  it("rotates the refresh token when the timer fires, and schedules the next", async () => {
    const { session, pending, forms } = setup([
      () => json(200, tokenAnswer(1)),
      () => json(200, tokenAnswer(2)),
    ]);
    await session.exchangeCode("c", "v", "r");
    const first = session.accessToken();
    pending()[0].callback();
    await vi.waitFor(() => expect(session.tokens?.refreshToken).toBe("refresh-2"));
    expect(Object.fromEntries(forms[1])).toEqual({
      grant_type: "refresh_token",
      refresh_token: "refresh-1",
      client_id: "agora-web",
    });
    expect(session.accessToken()).not.toBe(first);
    expect(pending()).toHaveLength(1);
  });

  it("is single-flight: concurrent refreshes send one request and share its result", async () => {
    let release: (response: Response) => void = () => undefined;
    const { session, fetch } = setup([
      () => json(200, tokenAnswer(1)),
      () => new Promise<Response>((resolve) => (release = resolve)),
    ]);
    await session.exchangeCode("c", "v", "r");
    const results = Promise.all([session.refresh(), session.refresh(), session.refresh()]);
    expect(fetch).toHaveBeenCalledTimes(2);
    release(json(200, tokenAnswer(2)));
    expect(await results).toEqual([true, true, true]);
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(session.tokens?.refreshToken).toBe("refresh-2");
  });

  it("signs out when the refresh token is refused as reused", async () => {
    const { session, pending } = setup([
      () => json(200, tokenAnswer(1)),
      () => json(400, { error: "invalid_grant", error_description: "refresh token reuse detected; the token family was revoked" }),
    ]);
    await session.exchangeCode("c", "v", "r");
    expect(await session.refresh()).toBe(false);
    expect(session.tokens).toBeNull();
    expect(session.accessToken()).toBeNull();
    expect(session.getSnapshot().endedReason).toMatch(/sign in again/);
    expect(pending()).toHaveLength(0);
  });

  it("keeps the session through a passing failure and tries again soon", async () => {
    const { session, pending } = setup([
      () => json(200, tokenAnswer(1)),
      () => {
        throw new TypeError("Failed to fetch");
      },
    ]);
    await session.exchangeCode("c", "v", "r");
    expect(await session.refresh()).toBe(false);
    expect(session.tokens?.refreshToken).toBe("refresh-1");
    expect(pending()).toHaveLength(1);
    expect(pending()[0].ms).toBe(15_000);
  });
});

describe("sign-out", () => {
  it("revokes the refresh token and the access token, and forgets both at once", async () => {
    const { session, forms, urls, pending } = setup([
      () => json(200, tokenAnswer(1)),
      () => json(200, {}),
      () => json(200, {}),
    ]);
    const tokens = await session.exchangeCode("c", "v", "r");
    const done = session.signOut();
    expect(session.tokens).toBeNull();
    await done;
    expect(urls.slice(1)).toEqual(["http://auth.test/oauth/revoke", "http://auth.test/oauth/revoke"]);
    expect(Object.fromEntries(forms[1])).toEqual({ token: "refresh-1", token_type_hint: "refresh_token", client_id: "agora-web" });
    expect(Object.fromEntries(forms[2])).toEqual({ token: tokens.accessToken, token_type_hint: "access_token", client_id: "agora-web" });
    expect(pending()).toHaveLength(0);
    expect(session.getSnapshot().endedReason).toBeNull();
  });

  it("still signs out locally when revocation fails", async () => {
    const { session } = setup([
      () => json(200, tokenAnswer(1)),
      () => {
        throw new TypeError("Failed to fetch");
      },
      () => json(503, {}),
    ]);
    await session.exchangeCode("c", "v", "r");
    await session.signOut();
    expect(session.tokens).toBeNull();
  });
});

describe("jwtPayload", () => {
  it("reads a JWT's claims and refuses garbage", () => {
    expect(jwtPayload(jwt({ sub: "u", scope: "a b" }))).toEqual({ sub: "u", scope: "a b" });
    expect(jwtPayload("not-a-jwt")).toBeNull();
    expect(jwtPayload("a.%%%.c")).toBeNull();
  });
});
