/**
 * Every route of the app (design12.md "Routes"). Customer pages are here; the
 * back office's come from src/pages/staff/routes.tsx and render behind the
 * {@link RequireStaff} guard. Unknown paths show a "not found" page (the
 * gateway answers index.html for any SPA path).
 */

import { createBrowserRouter, type RouteObject } from "react-router";
import { Layout } from "./Layout";
import { RequireStaff } from "./components/RequireStaff";
import { AuthCallbackPage, SignInPage } from "./pages/AuthPages";
import { CartPage } from "./pages/CartPage";
import { CatalogPage } from "./pages/CatalogPage";
import { CheckoutPage } from "./pages/CheckoutPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { NotificationsPage } from "./pages/NotificationsPage";
import { OrderPage } from "./pages/OrderPage";
import { OrdersPage } from "./pages/OrdersPage";
import { ProductPage } from "./pages/ProductPage";
import { ProfilePage } from "./pages/ProfilePage";
import { staffRoutes } from "./pages/staff/routes";

export const routes: RouteObject[] = [
  {
    path: "/",
    element: <Layout />,
    children: [
      { index: true, element: <CatalogPage /> },
      { path: "products/:id", element: <ProductPage /> },
      { path: "cart", element: <CartPage /> },
      { path: "checkout", element: <CheckoutPage /> },
      { path: "orders", element: <OrdersPage /> },
      { path: "orders/:id", element: <OrderPage /> },
      { path: "notifications", element: <NotificationsPage /> },
      { path: "profile", element: <ProfilePage /> },
      { path: "auth/callback", element: <AuthCallbackPage /> },
      { path: "auth/sign-in", element: <SignInPage /> },
      { element: <RequireStaff />, children: staffRoutes },
      { path: "*", element: <NotFoundPage /> },
    ],
  },
];

export function createRouter() {
  return createBrowserRouter(routes);
}
