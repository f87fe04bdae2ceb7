/**
 * The shapes of the API's JSON, as the app reads them (the schemas are in
 * services/<service>/schemas.py and the gateway's OpenAPI at /docs).
 */

import type { Money } from "../cart/cart";

export type { Money };

/** A cursor page: `next_cursor` is null on the last page. */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface ProductImage {
  id: string;
  width: number;
  height: number;
  urls: { list: string; detail: string };
}

export interface Product {
  id: string;
  sku: string;
  name: string;
  description: string;
  price: Money;
  active: boolean;
  created_at: string;
  updated_at: string;
  /** First = the main image; empty (or absent on an older gateway) when none. */
  images?: ProductImage[];
}

export interface StockQuantities {
  on_hand: number;
  reserved: number;
  available: number;
}

export interface Stock {
  sku: string;
  warehouses: (StockQuantities & { warehouse: string })[];
  total: StockQuantities;
}

export type OrderStatus =
  | "pending"
  | "reserved"
  | "paid"
  | "confirmed"
  | "rejected"
  | "payment_failed"
  | "cancelled"
  | "expired";

/** services/orders/domain.py TERMINAL: the saga is over. */
export const TERMINAL_STATUSES: ReadonlySet<OrderStatus> = new Set(["confirmed", "rejected", "cancelled", "expired"]);

export interface OrderLine {
  product_id: string;
  sku: string;
  name: string;
  quantity: number;
  unit_price: Money;
  line_total: Money;
}

export interface OrderHistoryEntry {
  status: OrderStatus;
  at: string;
  reason: string | null;
  /** A customer-facing sentence, when the API gives one. */
  message?: string | null;
}

export interface PaymentFailure {
  code: string;
  reason: string;
}

export interface Payment {
  id: string;
  order_id: string;
  user_id: string;
  amount: Money;
  status: string;
  refunded: Money;
  failure: PaymentFailure | null;
  attempts: number;
  created_at: string;
  updated_at: string;
  refunds: unknown[];
  disputes: unknown[];
  receipt: { id: string; number: string; issued_at: string; amount: Money } | null;
}

export interface Unavailable {
  state: "unavailable";
}

export interface Order {
  id: string;
  user_id: string;
  status: OrderStatus;
  items: OrderLine[];
  total: Money;
  payment_id: string | null;
  reason: string | null;
  shortages: { sku: string; name: string; requested: number; available: number }[];
  created_at: string;
  updated_at: string;
  deadline_at: string;
  history: OrderHistoryEntry[];
  /** Why a cancelled order was cancelled, in words for the customer (newer API). */
  cancellation_reason?: string | null;
  /** Only in GET /v1/orders/{id}. */
  reservation?: unknown;
  payment?: Payment | Unavailable | null;
}

export interface Notification {
  id: string;
  [key: string]: unknown;
}

export interface User {
  id: string;
  email: string;
  name?: string | null;
  [key: string]: unknown;
}
