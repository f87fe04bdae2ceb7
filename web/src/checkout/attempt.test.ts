import { afterEach, describe, expect, it } from "vitest";
import { ATTEMPT_KEY, TEST_CARDS, attemptFor, clearAttempt, newIdempotencyKey, sameBody, type OrderBody } from "./attempt";

const body: OrderBody = {
  items: [
    { product_id: "a", quantity: 2 },
    { product_id: "b", quantity: 1 },
  ],
  payment: { token: "tok_visa" },
};

afterEach(() => sessionStorage.clear());

describe("one Idempotency-Key per checkout attempt", () => {
  it("reuses the key for a retry of the same checkout (even after a reload)", () => {
    let n = 0;
    const makeKey = () => `key-${++n}`;
    const first = attemptFor(body, sessionStorage, makeKey);
    const reordered = { ...body, items: [...body.items].reverse() };
    expect(attemptFor(reordered, sessionStorage, makeKey).idempotencyKey).toBe(first.idempotencyKey);
    expect(JSON.parse(sessionStorage.getItem(ATTEMPT_KEY) ?? "{}").idempotencyKey).toBe("key-1");
  });

  it("makes a new key when the cart or the card changes", () => {
    let n = 0;
    const makeKey = () => `key-${++n}`;
    attemptFor(body, sessionStorage, makeKey);
    const otherCard = attemptFor({ ...body, payment: { token: "tok_chargeDeclined" } }, sessionStorage, makeKey);
    expect(otherCard.idempotencyKey).toBe("key-2");
    const otherItems = attemptFor({ ...body, items: [{ product_id: "a", quantity: 3 }] }, sessionStorage, makeKey);
    expect(otherItems.idempotencyKey).toBe("key-3");
  });

  it("starts afresh once the order exists", () => {
    const first = attemptFor(body);
    clearAttempt();
    expect(attemptFor(body).idempotencyKey).not.toBe(first.idempotencyKey);
  });

  it("makes UUID keys the API accepts", () => {
    const key = newIdempotencyKey();
    expect(key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(newIdempotencyKey()).not.toBe(key);
  });

  it("compares bodies by items and card", () => {
    expect(sameBody(body, { ...body })).toBe(true);
    expect(sameBody(body, { ...body, items: body.items.slice(1) })).toBe(false);
  });

  it("names the simulated processor's test cards as the design says", () => {
    expect(TEST_CARDS.map((card) => [card.label, card.token])).toEqual([
      ["Visa (succeeds)", "tok_visa"],
      ["Declined", "tok_chargeDeclined"],
      ["Processing error", "tok_processingError"],
      ["Timeout", "tok_timeout"],
    ]);
  });
});
