/**
 * The back office's routes. src/router.tsx renders them inside the app's
 * layout behind RequireStaff (signed in, with some staff scope); each page
 * then checks its own scope (./common.tsx RequireScope) and says which
 * permission is missing rather than calling the API without it.
 *
 * The pages are loaded on first use (React.lazy: their own chunks), so
 * customers never download the back office; a "Loading…" shows meanwhile,
 * and a chunk that fails to load (a lost connection, a newer build deployed)
 * shows an error with "Reload" (the layout's error boundary), never a blank page.
 */

import { Suspense, lazy, type ComponentType } from "react";
import type { RouteObject } from "react-router";
import { Loading } from "../../components/Loading";

/** A route element for export `name` of the module `load` imports. */
function page(load: () => Promise<object>, name: string) {
  const Page = lazy(async () => ({ default: ((await load()) as Record<string, ComponentType>)[name] }));
  return (
    <Suspense fallback={<Loading label="Loading the back office…" />}>
      <Page />
    </Suspense>
  );
}

export const staffRoutes: RouteObject[] = [
  { path: "/staff", element: page(() => import("./StaffIndexPage"), "StaffIndexPage") },
  { path: "/staff/products", element: page(() => import("./ProductsPage"), "ProductsPage") },
  { path: "/staff/products/new", element: page(() => import("./ProductEditPage"), "ProductNewPage") },
  { path: "/staff/products/:id", element: page(() => import("./ProductEditPage"), "ProductEditPage") },
  { path: "/staff/stock", element: page(() => import("./StockPage"), "StockPage") },
  { path: "/staff/payments", element: page(() => import("./PaymentsPage"), "PaymentsPage") },
  { path: "/staff/payments/:id", element: page(() => import("./PaymentPage"), "PaymentPage") },
  { path: "/staff/dead-letters", element: page(() => import("./DeadLettersPage"), "DeadLettersPage") },
  { path: "/staff/services", element: page(() => import("./ServicesPage"), "ServicesPage") },
];
