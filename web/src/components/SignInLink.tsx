/**
 * A link that signs in and comes back here: a link (not a second "Sign in"
 * button beside the header's, which the browser tests find by name), to
 * /auth/sign-in?return=<this page>, which starts the authorization request.
 */

import { Link, useLocation } from "react-router";

export function SignInLink({ children = "Sign in to continue" }: { children?: string }) {
  const location = useLocation();
  const back = location.pathname + location.search;
  return (
    <Link className="button" to={`/auth/sign-in?return=${encodeURIComponent(back)}`}>
      {children}
    </Link>
  );
}
