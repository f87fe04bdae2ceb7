/**
 * The guard of the /staff pages: signed out, it offers "Sign in"; signed in
 * without any staff scope, it says so; otherwise it renders the page. The API
 * checks every scope again: this only keeps people from pages they cannot use.
 */

import { Outlet } from "react-router";
import { useAuth } from "../auth";
import { SignInLink } from "./SignInLink";

export function RequireStaff() {
  const auth = useAuth();
  if (!auth.signedIn) {
    return (
      <section>
        <h1>Back office</h1>
        <p>Please sign in with a staff account to use the back office.</p>
        <SignInLink />
      </section>
    );
  }
  if (!auth.isStaff) {
    return (
      <section>
        <h1>Back office</h1>
        <div className="alert" role="alert">
          <p>Your account has no staff permissions.</p>
        </div>
      </section>
    );
  }
  return <Outlet />;
}
