/**
 * The back office's routes (owned by the staff pages; this file is a
 * placeholder until they land). Each entry is a react-router route object
 * with an absolute path under /staff; src/router.tsx renders them inside the
 * app's layout, behind a guard that asks for sign-in and a staff scope
 * (src/components/RequireStaff.tsx), so the pages need not check that again.
 */

import type { RouteObject } from "react-router";

function Placeholder({ title }: { title: string }) {
  return (
    <section>
      <h1>{title}</h1>
      <p className="muted">This part of the back office is not built yet.</p>
    </section>
  );
}

export const staffRoutes: RouteObject[] = [
  { path: "/staff", element: <Placeholder title="Back office" /> },
  { path: "/staff/products", element: <Placeholder title="Products" /> },
  { path: "/staff/products/new", element: <Placeholder title="New product" /> },
  { path: "/staff/products/:id", element: <Placeholder title="Product" /> },
  { path: "/staff/stock", element: <Placeholder title="Stock" /> },
  { path: "/staff/payments", element: <Placeholder title="Payments" /> },
  { path: "/staff/payments/:id", element: <Placeholder title="Payment" /> },
  { path: "/staff/dead-letters", element: <Placeholder title="Dead letters" /> },
  { path: "/staff/services", element: <Placeholder title="Services" /> },
];
