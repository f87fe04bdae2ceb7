/**
 * The app's auth: one {@link session} (tokens in memory), connected to the API
 * client, and the {@link useAuth} hook for components.
 *
 * ```tsx
 * const auth = useAuth();
 * if (!auth.signedIn) return <button onClick={() => auth.signIn()}>Sign in</button>;
 * if (auth.hasScope("catalog:write")) ...
 * ```
 */

import { useCallback, useMemo, useSyncExternalStore } from "react";
import { api, apiBaseUrl } from "../api/client";
import { startSignIn } from "./flow";
import { AuthSession, type Tokens } from "./session";

export { CUSTOMER_SCOPES, STAFF_SCOPES } from "./flow";
export type { Tokens } from "./session";

/** The public first-party client (no secret). */
export const CLIENT_ID = "agora-web";

/** The app's one session. */
export const session = new AuthSession({ baseUrl: apiBaseUrl(), clientId: CLIENT_ID });
api.setTokenSource(session);

/** Staff pages need one of these scopes (the "Staff" link shows with any). */
export const STAFF_PAGE_SCOPES = ["catalog:write", "inventory:write", "billing:admin", "ops:read"];

export interface Auth {
  signedIn: boolean;
  tokens: Tokens | null;
  scopes: string[];
  userId: string | null;
  /** Why the session ended by itself (refresh refused), until acknowledged. */
  endedReason: string | null;
  hasScope: (scope: string) => boolean;
  /** Whether any staff scope was granted. */
  isStaff: boolean;
  /** Goes to the authorize page; comes back to `returnTo` (default: here). */
  signIn: (returnTo?: string) => Promise<void>;
  /** Revokes the tokens and forgets them. */
  signOut: () => Promise<void>;
  acknowledgeEnded: () => void;
}

/** The session as React state: re-renders on sign-in, refresh and sign-out. */
export function useAuth(): Auth {
  const snapshot = useSyncExternalStore(session.subscribe, session.getSnapshot, session.getSnapshot);
  const tokens = snapshot.tokens;
  const signIn = useCallback(
    (returnTo?: string) =>
      startSignIn(
        apiBaseUrl(),
        CLIENT_ID,
        returnTo ?? window.location.pathname + window.location.search,
      ),
    [],
  );
  const signOut = useCallback(() => session.signOut(), []);
  const acknowledgeEnded = useCallback(() => session.acknowledgeEnded(), []);
  return useMemo(() => {
    const scopes = tokens?.scopes ?? [];
    return {
      signedIn: tokens !== null,
      tokens,
      scopes,
      userId: tokens?.userId ?? null,
      endedReason: snapshot.endedReason,
      hasScope: (scope: string) => scopes.includes(scope),
      isStaff: STAFF_PAGE_SCOPES.some((scope) => scopes.includes(scope)),
      signIn,
      signOut,
      acknowledgeEnded,
    };
  }, [tokens, snapshot.endedReason, signIn, signOut, acknowledgeEnded]);
}
