/**
 * The authorization code flow with PKCE (RFC 6749 4.1, RFC 7636), browser side.
 *
 * {@link startSignIn} creates a verifier and a state, keeps them in
 * sessionStorage (this tab only; they are single-use and worthless without
 * the code) and sends the browser to Agora's `/oauth/authorize`;
 * {@link completeSignIn}, on `/auth/callback`, checks the state, exchanges the
 * code with the verifier and forgets both.
 *
 * Scopes: the customer scopes plus the staff ones. The authorization server
 * grants the intersection of what is asked with what the user's roles allow
 * (services/auth/domain.py granted_scopes: names not allowed are left out,
 * not refused), so one "Sign in" serves customers and staff alike, and a
 * customer's token never carries a staff scope. Only names the server
 * publishes in its metadata are asked for (an unknown one is `invalid_scope`).
 */

import { challengeS256, createState, createVerifier } from "./pkce";

export const CUSTOMER_SCOPES = ["profile", "orders:read", "orders:write"];
export const STAFF_SCOPES = [
  "catalog:write",
  "inventory:write",
  "billing:admin",
  "users:admin",
  "ops:read",
  "ops:write",
];

const PENDING_KEY = "agora.auth.pending";

/** What survives the round trip to the authorize page (sessionStorage). */
export interface PendingSignIn {
  state: string;
  verifier: string;
  redirectUri: string;
  /** The app path to return to after signing in. */
  returnTo: string;
}

/** The SPA's redirect URI: `<origin>/auth/callback` (registered for agora-web). */
export function redirectUri(origin: string = window.location.origin): string {
  return `${origin}/auth/callback`;
}

/** The scopes to ask for: customer + staff, less those the server does not publish. */
export function scopesToRequest(supported: string[] | null): string[] {
  const wanted = [...CUSTOMER_SCOPES, ...STAFF_SCOPES];
  if (!supported) return wanted.filter((scope) => scope !== "ops:write");
  return wanted.filter((scope) => supported.includes(scope));
}

/** The authorize URL for a pending sign-in. */
export function authorizeUrl(
  baseUrl: string,
  clientId: string,
  pending: PendingSignIn,
  challenge: string,
  scopes: string[],
): string {
  const params = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: pending.redirectUri,
    scope: scopes.join(" "),
    state: pending.state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  return `${baseUrl}/oauth/authorize?${params.toString()}`;
}

async function supportedScopes(baseUrl: string): Promise<string[] | null> {
  try {
    const response = await fetch(`${baseUrl}/.well-known/oauth-authorization-server`, {
      headers: { Accept: "application/json" },
    });
    if (!response.ok) return null;
    const metadata = (await response.json()) as { scopes_supported?: unknown };
    return Array.isArray(metadata.scopes_supported) ? metadata.scopes_supported.map(String) : null;
  } catch {
    return null;
  }
}

/** Begins signing in: stores the pending request and goes to the authorize page. */
export async function startSignIn(baseUrl: string, clientId: string, returnTo: string): Promise<void> {
  const pending: PendingSignIn = {
    state: createState(),
    verifier: createVerifier(),
    redirectUri: redirectUri(),
    returnTo: safeReturnPath(returnTo),
  };
  const [challenge, supported] = await Promise.all([
    challengeS256(pending.verifier),
    supportedScopes(baseUrl),
  ]);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  window.location.assign(authorizeUrl(baseUrl, clientId, pending, challenge, scopesToRequest(supported)));
}

/** Why a callback cannot complete the sign-in. */
export class SignInError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = "SignInError";
  }
}

/**
 * Reads the callback's query: the pending request it answers, and its code.
 * Throws SignInError for an error answer, a missing or mismatched state (a
 * forged or replayed callback), or no pending request. The pending request is
 * removed either way: it is single-use.
 */
export function takeCallback(search: string): { pending: PendingSignIn; code: string } {
  const params = new URLSearchParams(search);
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  const error = params.get("error");
  if (error) {
    const description = params.get("error_description");
    const message =
      error === "access_denied"
        ? "Sign-in was cancelled."
        : `Sign-in failed: ${description || error}.`;
    throw new SignInError(message, error);
  }
  let pending: PendingSignIn | null = null;
  try {
    pending = raw ? (JSON.parse(raw) as PendingSignIn) : null;
  } catch {
    pending = null;
  }
  if (!pending) {
    throw new SignInError("This sign-in link has expired or was already used. Please sign in again.", "no_pending_request");
  }
  const state = params.get("state");
  if (!state || state !== pending.state) {
    throw new SignInError("The sign-in answer did not match this browser's request. Please sign in again.", "state_mismatch");
  }
  const code = params.get("code");
  if (!code) throw new SignInError("The sign-in answer carried no code. Please sign in again.", "no_code");
  return { pending, code };
}

/** Only same-app paths are returned to (no open redirect through returnTo). */
export function safeReturnPath(path: string): string {
  if (!path.startsWith("/") || path.startsWith("//") || path.startsWith("/auth/")) return "/";
  return path;
}
