/**
 * /auth/callback: the authorization server sends the browser back here with
 * `code` and `state`; the state is checked, the code exchanged (with the PKCE
 * verifier) and the user returned to where they started.
 * /auth/sign-in?return=<path>: starts a sign-in (what in-page "Sign in to
 * continue" links point to).
 */

import { useEffect, useRef, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { session, useAuth } from "../auth";
import { SignInError, safeReturnPath, takeCallback } from "../auth/flow";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";

export function AuthCallbackPage() {
  const navigate = useNavigate();
  const [failure, setFailure] = useState<unknown>(null);
  const started = useRef(false);

  useEffect(() => {
    // Once only (StrictMode runs effects twice in development; a code is single-use).
    if (started.current) return;
    started.current = true;
    let callback: ReturnType<typeof takeCallback>;
    try {
      callback = takeCallback(window.location.search);
    } catch (error) {
      setFailure(error);
      return;
    }
    session
      .exchangeCode(callback.code, callback.pending.verifier, callback.pending.redirectUri)
      .then(() => navigate(safeReturnPath(callback.pending.returnTo), { replace: true }))
      .catch(setFailure);
  }, [navigate]);

  if (failure) {
    return (
      <section>
        <h1>Sign-in failed</h1>
        {failure instanceof SignInError ? (
          <div className="alert" role="alert">
            <p>{failure.message}</p>
          </div>
        ) : (
          <ErrorMessage error={failure} title="Sign-in could not be completed." />
        )}
        <p>
          <Link to="/auth/sign-in">Try signing in again</Link> or <Link to="/">browse the products</Link>.
        </p>
      </section>
    );
  }
  return (
    <section>
      <h1>Signing in</h1>
      <Loading label="Completing sign-in…" />
    </section>
  );
}

export function SignInPage() {
  const [params] = useSearchParams();
  const auth = useAuth();
  const navigate = useNavigate();
  const target = safeReturnPath(params.get("return") ?? "/");
  const started = useRef(false);

  useEffect(() => {
    if (started.current) return;
    started.current = true;
    if (auth.signedIn) navigate(target, { replace: true });
    else void auth.signIn(target);
  }, [auth, navigate, target]);

  return (
    <section>
      <h1>Signing in</h1>
      <Loading label="Going to the sign-in page…" />
    </section>
  );
}
