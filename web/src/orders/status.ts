/**
 * An order as a customer reads it: what each status means, why an order ended
 * (from its `reason` and its payment's failure), and how often to look again
 * while the saga runs.
 */

import { TERMINAL_STATUSES, type Order, type OrderStatus, type Payment } from "../api/types";

export const STATUS_TEXT: Record<OrderStatus, string> = {
  pending: "We received your order and are reserving the stock.",
  reserved: "Stock reserved; charging your card.",
  paid: "Payment received; finalising your order.",
  confirmed: "Your order is confirmed.",
  rejected: "Your order could not be accepted.",
  payment_failed: "The payment failed; releasing the reserved stock.",
  cancelled: "This order was cancelled.",
  expired: "This order expired before it could be completed.",
};

/** Whether the saga is over (services/orders/domain.py TERMINAL). */
export function isTerminal(status: OrderStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** Whether the customer may ask to cancel (the server has the last word: a closed window is a 409). */
export function isCancellable(status: OrderStatus): boolean {
  return status === "pending" || status === "reserved" || status === "paid" || status === "confirmed";
}

const FAILURE_TEXT: Record<string, string> = {
  card_declined: "Your card was declined.",
  processing_error: "The payment processor failed to process your card.",
  timeout: "The payment processor did not answer in time.",
};

function paymentOf(order: Order): Payment | null {
  const payment = order.payment;
  if (!payment || (payment as { state?: string }).state === "unavailable") return null;
  return payment as Payment;
}

/**
 * Why the order ended, for the "Cancellation reason" element; null while
 * there is nothing to explain (the order is not cancelled, rejected or expired).
 */
export function endReason(order: Order): string | null {
  if (!["cancelled", "rejected", "expired", "payment_failed"].includes(order.status)) return null;
  // The API's own words when it gives them (it knows the payment's failure).
  if (order.cancellation_reason) return order.cancellation_reason;
  const failure = paymentOf(order)?.failure;
  switch (order.reason) {
    case "payment_failed":
      if (failure) return FAILURE_TEXT[failure.code] ?? `The payment failed: ${failure.reason}.`;
      return "The payment failed.";
    case "customer":
      return "You cancelled this order.";
    case "out_of_stock": {
      const short = order.shortages.map((s) => `${s.name} (asked ${s.requested}, ${s.available} available)`);
      return short.length ? `Not enough stock: ${short.join("; ")}.` : "Some items were out of stock.";
    }
    case "deadline":
      return "The order was not completed in time.";
    case "reservation_expired":
      return "The stock reservation expired before the payment went through.";
    case "commit_failed":
      return "The stock could not be secured after payment; you have been refunded.";
    case null:
    case undefined:
      if (failure) return FAILURE_TEXT[failure.code] ?? `The payment failed: ${failure.reason}.`;
      return null;
    default:
      if (failure) return FAILURE_TEXT[failure.code] ?? `The payment failed: ${failure.reason}.`;
      return order.reason.includes(" ") ? order.reason : `Reason: ${order.reason.replace(/_/g, " ")}.`;
  }
}

/**
 * The wait before the next look at a running order: 1 s, then 1.5 times
 * longer each time, at most 10 s (the saga usually ends within seconds).
 */
export function pollDelay(attempt: number, baseMs = 1_000, factor = 1.5, maxMs = 10_000): number {
  return Math.min(maxMs, Math.round(baseMs * factor ** Math.max(0, attempt)));
}
