import { describe, expect, it } from "vitest";
import type { Order } from "../api/types";
import { endReason, isCancellable, isTerminal, pollDelay } from "./status";

function order(fields: Partial<Order>): Order {
  return {
    id: "o",
    user_id: "u",
    status: "pending",
    items: [],
    total: { amount: 0, currency: "EUR" },
    payment_id: null,
    reason: null,
    shortages: [],
    created_at: "2026-12-02T10:00:00Z",
    updated_at: "2026-12-02T10:00:00Z",
    deadline_at: "2026-12-02T10:15:00Z",
    history: [],
    ...fields,
  };
}

describe("order status", () => {
  it("knows the terminal statuses of the saga", () => {
    expect(["confirmed", "rejected", "cancelled", "expired"].every((s) => isTerminal(s as Order["status"]))).toBe(true);
    expect(["pending", "reserved", "paid", "payment_failed"].some((s) => isTerminal(s as Order["status"]))).toBe(false);
    expect(isCancellable("confirmed")).toBe(true);
    expect(isCancellable("cancelled")).toBe(false);
  });

  it("explains a declined card", () => {
    const declined = order({
      status: "cancelled",
      reason: "payment_failed",
      payment: {
        id: "p",
        order_id: "o",
        user_id: "u",
        amount: { amount: 1, currency: "EUR" },
        status: "failed",
        refunded: { amount: 0, currency: "EUR" },
        failure: { code: "card_declined", reason: "the card was declined (card_declined)" },
        attempts: 1,
        created_at: "",
        updated_at: "",
        refunds: [],
        disputes: [],
        receipt: null,
      },
    });
    expect(endReason(declined)).toBe("Your card was declined.");
  });

  it("prefers the API's own cancellation_reason", () => {
    expect(endReason(order({ status: "cancelled", reason: "payment_failed", cancellation_reason: "Your card was declined" }))).toBe(
      "Your card was declined",
    );
    expect(endReason(order({ status: "confirmed", cancellation_reason: "stale" }))).toBeNull();
  });

  it("explains other endings, and nothing for a live order", () => {
    expect(endReason(order({ status: "cancelled", reason: "customer" }))).toBe("You cancelled this order.");
    expect(
      endReason(order({ status: "rejected", reason: "out_of_stock", shortages: [{ sku: "M", name: "Mug", requested: 3, available: 1 }] })),
    ).toMatch(/Mug \(asked 3, 1 available\)/);
    expect(endReason(order({ status: "expired", reason: "deadline" }))).toMatch(/not completed in time/);
    expect(endReason(order({ status: "cancelled", reason: "payment_failed", payment: { state: "unavailable" } }))).toBe(
      "The payment failed.",
    );
    expect(endReason(order({ status: "confirmed" }))).toBeNull();
  });

  it("polls with a growing, bounded delay", () => {
    const delays = Array.from({ length: 12 }, (_, n) => pollDelay(n));
    expect(delays[0]).toBe(1000);
    expect(delays[1]).toBe(1500);
    for (let n = 1; n < delays.length; n += 1) expect(delays[n]).toBeGreaterThanOrEqual(delays[n - 1]);
    expect(Math.max(...delays)).toBe(10_000);
  });
});
