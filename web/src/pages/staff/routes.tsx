/**
 * The back office's routes. src/router.tsx renders them inside the app's
 * layout behind RequireStaff (signed in, with some staff scope); each page
 * then checks its own scope (./common.tsx RequireScope) and says which
 * permission is missing rather than calling the API without it.
 */

import type { RouteObject } from "react-router";
import { DeadLettersPage } from "./DeadLettersPage";
import { PaymentPage } from "./PaymentPage";
import { PaymentsPage } from "./PaymentsPage";
import { ProductEditPage, ProductNewPage } from "./ProductEditPage";
import { ProductsPage } from "./ProductsPage";
import { ServicesPage } from "./ServicesPage";
import { StaffIndexPage } from "./StaffIndexPage";
import { StockPage } from "./StockPage";

export const staffRoutes: RouteObject[] = [
  { path: "/staff", element: <StaffIndexPage /> },
  { path: "/staff/products", element: <ProductsPage /> },
  { path: "/staff/products/new", element: <ProductNewPage /> },
  { path: "/staff/products/:id", element: <ProductEditPage /> },
  { path: "/staff/stock", element: <StockPage /> },
  { path: "/staff/payments", element: <PaymentsPage /> },
  { path: "/staff/payments/:id", element: <PaymentPage /> },
  { path: "/staff/dead-letters", element: <DeadLettersPage /> },
  { path: "/staff/services", element: <ServicesPage /> },
];
