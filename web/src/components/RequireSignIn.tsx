/**
 * Pages that need a signed-in customer (orders, notifications, profile,
 * checkout) render this instead of their content when signed out: a heading
 * and a "Sign in" button that comes back to the same page.
 */

import type { ReactNode } from "react";
import { useAuth } from "../auth";
import { SignInLink } from "./SignInLink";

export function RequireSignIn({ title, children, why }: { title: string; children: ReactNode; why?: string }) {
  const auth = useAuth();
  if (auth.signedIn) return <>{children}</>;
  return (
    <section>
      <h1>{title}</h1>
      <p>{why ?? "Please sign in to see this page."}</p>
      <SignInLink />
    </section>
  );
}
