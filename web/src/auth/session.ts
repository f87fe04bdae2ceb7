/**
 * The signed-in session: tokens in memory only (never localStorage or
 * cookies, so a script injected into another tab or a stolen disk finds
 * nothing; a reload means signing in again).
 *
 * - {@link AuthSession.exchangeCode} redeems an authorization code (with its
 *   PKCE verifier) at `/oauth/token`; agora-web is a public client, so it sends
 *   its client_id and no secret.
 * - The access token is refreshed before it expires (at 80% of its life, at
 *   most a minute early) with the refresh token, which rotates: every refresh
 *   answers a new one and the old one is dead. A refresh is single-flight:
 *   the timer and any number of concurrent 401s share one request, because
 *   sending the same refresh token twice is reuse, and the server answers reuse
 *   by revoking the whole token family.
 * - An `invalid_grant` answer to a refresh (reuse detected, revoked, expired)
 *   signs the user out, with a message saying why.
 * - {@link AuthSession.signOut} revokes the refresh token (its whole family)
 *   and the access token at `/oauth/revoke` (RFC 7009), then forgets both.
 */

import { errorFromBody } from "../api/errors";

/** The token endpoint's answer (RFC 6749 5.1). */
export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  refresh_token?: string;
  scope?: string;
}

/** What the app knows of the signed-in user. */
export interface Tokens {
  accessToken: string;
  refreshToken: string | null;
  /** When the access token expires (ms since the epoch, by our clock). */
  expiresAt: number;
  /** The granted scopes (the server may grant fewer than asked). */
  scopes: string[];
  /** The token's subject (the user id), from the JWT's `sub`. */
  userId: string | null;
}

export interface SessionDeps {
  fetch: typeof fetch;
  /** The authorization server's base URL (the gateway). */
  baseUrl: string;
  clientId: string;
  now: () => number;
  setTimer: (callback: () => void, ms: number) => unknown;
  clearTimer: (handle: unknown) => void;
}

export interface SessionSnapshot {
  tokens: Tokens | null;
  /** Why the session ended, when it ended by itself (shown once). */
  endedReason: string | null;
}

type Listener = () => void;

/** Seconds before expiry the refresh is due: 20% of the lifetime, at most 60 s. */
export function refreshDelay(expiresInSeconds: number): number {
  const lifetime = Math.max(0, expiresInSeconds) * 1000;
  const early = Math.min(60_000, lifetime * 0.2);
  return Math.max(1_000, lifetime - early);
}

/** The payload of a JWT (no verification: the server checks tokens; we only read). */
export function jwtPayload(token: string): Record<string, unknown> | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const json = new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)));
    const value = JSON.parse(json) as unknown;
    return value && typeof value === "object" ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export class AuthSession {
  deps: SessionDeps;
  private snapshot: SessionSnapshot = { tokens: null, endedReason: null };
  private listeners = new Set<Listener>();
  private timer: unknown = null;
  private inflight: Promise<boolean> | null = null;

  constructor(deps: Partial<SessionDeps> = {}) {
    this.deps = {
      fetch: (...args) => globalThis.fetch(...args),
      baseUrl: "",
      clientId: "agora-web",
      now: () => Date.now(),
      setTimer: (callback, ms) => setTimeout(callback, ms),
      clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
      ...deps,
    };
  }

  // --- reading ---------------------------------------------------------------

  /** useSyncExternalStore's subscribe. */
  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** useSyncExternalStore's getSnapshot: a new object on every change only. */
  getSnapshot = (): SessionSnapshot => this.snapshot;

  get tokens(): Tokens | null {
    return this.snapshot.tokens;
  }

  /** The access token, or null when signed out (the API client's TokenSource). */
  accessToken = (): string | null => this.snapshot.tokens?.accessToken ?? null;

  /** Whether the session holds `scope` (e.g. "catalog:write"). */
  hasScope(scope: string): boolean {
    return this.snapshot.tokens?.scopes.includes(scope) ?? false;
  }

  // --- changing --------------------------------------------------------------

  /** Redeems an authorization code (RFC 6749 4.1.3 with RFC 7636's verifier). */
  async exchangeCode(code: string, codeVerifier: string, redirectUri: string): Promise<Tokens> {
    const answer = await this.tokenRequest({
      grant_type: "authorization_code",
      code,
      code_verifier: codeVerifier,
      redirect_uri: redirectUri,
      client_id: this.deps.clientId,
    });
    return this.accept(answer, null);
  }

  /**
   * Refreshes the tokens; resolves true when a new access token is in place.
   * Single-flight: calls while one is under way share its result.
   */
  refresh = (): Promise<boolean> => {
    if (this.inflight) return this.inflight;
    const current = this.snapshot.tokens;
    if (!current?.refreshToken) return Promise.resolve(false);
    this.inflight = this.doRefresh(current).finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  };

  private async doRefresh(current: Tokens): Promise<boolean> {
    let answer: TokenResponse;
    try {
      answer = await this.tokenRequest({
        grant_type: "refresh_token",
        refresh_token: current.refreshToken ?? "",
        client_id: this.deps.clientId,
      });
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "invalid_grant" || code === "invalid_client" || code === "unauthorized_client") {
        // Reuse detected (the family is revoked), expired or revoked: the
        // refresh token is dead, and so is the session.
        this.end("Your session has ended. Please sign in again.");
        return false;
      }
      // No answer or a passing failure: keep the tokens, try again shortly
      // while the access token may still be good.
      if (this.snapshot.tokens === current) this.schedule(15_000);
      return false;
    }
    if (this.snapshot.tokens !== current) return false; // signed out meanwhile
    this.accept(answer, current);
    return true;
  }

  /** Signs out: revokes the refresh token (its family) and the access token, then forgets both. */
  async signOut(): Promise<void> {
    const current = this.snapshot.tokens;
    this.clear(null);
    if (!current) return;
    const revocations: Promise<unknown>[] = [];
    if (current.refreshToken) {
      revocations.push(this.revoke(current.refreshToken, "refresh_token"));
    }
    revocations.push(this.revoke(current.accessToken, "access_token"));
    await Promise.allSettled(revocations);
  }

  /** Forgets the tokens with a reason shown to the user (e.g. after refresh-token reuse). */
  end(reason: string): void {
    this.clear(reason);
  }

  /** Clears the "session ended" message once shown. */
  acknowledgeEnded(): void {
    if (this.snapshot.endedReason) this.set({ ...this.snapshot, endedReason: null });
  }

  private async revoke(token: string, hint: string): Promise<void> {
    const response = await this.deps.fetch(`${this.deps.baseUrl}/oauth/revoke`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({ token, token_type_hint: hint, client_id: this.deps.clientId }).toString(),
      credentials: "omit",
    });
    if (!response.ok) throw errorFromBody(response.status, await response.json().catch(() => null));
  }

  private async tokenRequest(form: Record<string, string>): Promise<TokenResponse> {
    const response = await this.deps.fetch(`${this.deps.baseUrl}/oauth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams(form).toString(),
      credentials: "omit",
      cache: "no-store",
    });
    const body = (await response.json().catch(() => null)) as unknown;
    if (!response.ok) throw errorFromBody(response.status, body);
    const answer = body as TokenResponse | null;
    if (!answer || typeof answer.access_token !== "string") {
      throw errorFromBody(502, { error: "invalid_response", error_description: "the token endpoint answered no access token" });
    }
    return answer;
  }

  private accept(answer: TokenResponse, previous: Tokens | null): Tokens {
    const expiresIn = Number(answer.expires_in) || 300;
    const claims = jwtPayload(answer.access_token);
    const tokens: Tokens = {
      accessToken: answer.access_token,
      // A rotation always answers a new refresh token; keep the old one only
      // if a server ever answered none.
      refreshToken: answer.refresh_token ?? previous?.refreshToken ?? null,
      expiresAt: this.deps.now() + expiresIn * 1000,
      scopes: (answer.scope ?? (typeof claims?.scope === "string" ? claims.scope : ""))
        .split(" ")
        .filter(Boolean),
      userId: typeof claims?.sub === "string" ? claims.sub : (previous?.userId ?? null),
    };
    this.set({ tokens, endedReason: null });
    if (tokens.refreshToken) this.schedule(refreshDelay(expiresIn));
    return tokens;
  }

  private schedule(ms: number): void {
    if (this.timer !== null) this.deps.clearTimer(this.timer);
    this.timer = this.deps.setTimer(() => {
      this.timer = null;
      void this.refresh();
    }, ms);
  }

  private clear(reason: string | null): void {
    if (this.timer !== null) this.deps.clearTimer(this.timer);
    this.timer = null;
    this.set({ tokens: null, endedReason: reason });
  }

  private set(snapshot: SessionSnapshot): void {
    this.snapshot = snapshot;
    for (const listener of [...this.listeners]) listener();
  }
}
