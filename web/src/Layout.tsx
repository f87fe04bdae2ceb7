/**
 * The frame of every page: a skip link, the header (`.site-header`: the
 * "Agora" wordmark and `<nav aria-label="Main">`), the connection banner, a
 * "session ended" notice, and `<main class="container">` holding the page
 * inside an error boundary.
 *
 * Header links (the browser tests select them by name): "Catalog", "Cart (N)",
 * and when signed in "Orders", "Notifications", "Profile", "Staff" (with a
 * staff scope); the button "Sign in" or "Sign out".
 */

import { useEffect, useRef } from "react";
import { NavLink, Outlet, useLocation } from "react-router";
import { useAuth } from "./auth";
import { useCart } from "./cart/CartContext";
import { itemCount } from "./cart/cart";
import { ConnectionBanner } from "./components/ConnectionBanner";
import { ErrorBoundary } from "./components/ErrorBoundary";

export function Layout() {
  const auth = useAuth();
  const { cart } = useCart();
  const location = useLocation();
  const count = itemCount(cart);
  const mainRef = useRef<HTMLElement>(null);

  // On navigation, move focus to the page (screen readers hear the new page).
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    mainRef.current?.focus({ preventScroll: false });
    window.scrollTo(0, 0);
  }, [location.pathname]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="site-header">
        <div className="inner">
          <NavLink to="/" className="brand" aria-label="Agora home">
            Agora
          </NavLink>
          <nav aria-label="Main">
            <ul>
              <li>
                <NavLink to="/" end>
                  Catalog
                </NavLink>
              </li>
              <li>
                <NavLink to="/cart">Cart ({count})</NavLink>
              </li>
              {auth.signedIn ? (
                <>
                  <li>
                    <NavLink to="/orders">Orders</NavLink>
                  </li>
                  <li>
                    <NavLink to="/notifications">Notifications</NavLink>
                  </li>
                  <li>
                    <NavLink to="/profile">Profile</NavLink>
                  </li>
                  {auth.isStaff ? (
                    <li>
                      <NavLink to="/staff">Staff</NavLink>
                    </li>
                  ) : null}
                </>
              ) : null}
            </ul>
          </nav>
          <div className="account">
            {auth.signedIn ? (
              <button type="button" className="button secondary" onClick={() => void auth.signOut()}>
                Sign out
              </button>
            ) : (
              <button type="button" className="button" onClick={() => void auth.signIn()}>
                Sign in
              </button>
            )}
          </div>
        </div>
      </header>
      <ConnectionBanner />
      <main id="main" className="container" ref={mainRef} tabIndex={-1}>
        {auth.endedReason ? (
          <div className="alert" role="alert">
            <p>{auth.endedReason}</p>
            <button type="button" className="button secondary" onClick={auth.acknowledgeEnded}>
              Dismiss
            </button>
          </div>
        ) : null}
        <ErrorBoundary resetKey={location.pathname}>
          <Outlet />
        </ErrorBoundary>
      </main>
      <footer className="site-footer">
        <p>Agora: a demo store. Payments use the simulated processor's test cards.</p>
      </footer>
    </>
  );
}
