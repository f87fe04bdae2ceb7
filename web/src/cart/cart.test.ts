import { describe, expect, it } from "vitest";
import {
  EMPTY_CART,
  MAX_LINE_QUANTITY,
  STORAGE_KEY,
  cartReducer,
  cartTotals,
  itemCount,
  loadCart,
  orderItems,
  parseCart,
  saveCart,
  type CartState,
} from "./cart";

const mug = { productId: "p-mug", sku: "MUG", name: "Mug", unitPrice: { amount: 1250, currency: "EUR" } };
const tee = { productId: "p-tee", sku: "TEE", name: "Tee", unitPrice: { amount: 1999, currency: "EUR" } };

function withLines(): CartState {
  let state = cartReducer(EMPTY_CART, { type: "add", line: mug, quantity: 2 });
  state = cartReducer(state, { type: "add", line: tee, quantity: 1 });
  return state;
}

describe("cart reducer", () => {
  it("adds lines, and adding the same product again adds to its quantity", () => {
    let state = withLines();
    expect(state.lines.map((line) => [line.name, line.quantity])).toEqual([
      ["Mug", 2],
      ["Tee", 1],
    ]);
    state = cartReducer(state, { type: "add", line: mug, quantity: 3 });
    expect(state.lines).toHaveLength(2);
    expect(state.lines[0].quantity).toBe(5);
    expect(itemCount(state)).toBe(6);
  });

  it("does not change the previous state (pure)", () => {
    const before = withLines();
    const copy = JSON.parse(JSON.stringify(before)) as CartState;
    cartReducer(before, { type: "setQuantity", productId: "p-mug", quantity: 9 });
    cartReducer(before, { type: "remove", productId: "p-tee" });
    expect(before).toEqual(copy);
  });

  it("sets quantities within bounds, and 0 removes the line", () => {
    let state = cartReducer(withLines(), { type: "setQuantity", productId: "p-mug", quantity: 7 });
    expect(state.lines[0].quantity).toBe(7);
    state = cartReducer(state, { type: "setQuantity", productId: "p-mug", quantity: 1000 });
    expect(state.lines[0].quantity).toBe(MAX_LINE_QUANTITY);
    state = cartReducer(state, { type: "setQuantity", productId: "p-mug", quantity: 2.7 });
    expect(state.lines[0].quantity).toBe(2);
    expect(cartReducer(state, { type: "setQuantity", productId: "p-mug", quantity: Number.NaN })).toBe(state);
    state = cartReducer(state, { type: "setQuantity", productId: "p-mug", quantity: 0 });
    expect(state.lines.map((line) => line.productId)).toEqual(["p-tee"]);
  });

  it("removes and clears", () => {
    expect(cartReducer(withLines(), { type: "remove", productId: "p-mug" }).lines).toHaveLength(1);
    expect(cartReducer(withLines(), { type: "clear" })).toEqual(EMPTY_CART);
  });

  it("totals per currency and builds the order's items", () => {
    const state = withLines();
    expect(cartTotals(state)).toEqual([{ currency: "EUR", amount: 2 * 1250 + 1999 }]);
    const mixed = cartReducer(state, {
      type: "add",
      line: { productId: "p-usd", sku: "USD", name: "Cap", unitPrice: { amount: 500, currency: "USD" } },
      quantity: 1,
    });
    expect(cartTotals(mixed)).toHaveLength(2);
    expect(orderItems(state)).toEqual([
      { product_id: "p-mug", quantity: 2 },
      { product_id: "p-tee", quantity: 1 },
    ]);
  });
});

describe("cart persistence", () => {
  it("survives a save and a load (a reload)", () => {
    const state = withLines();
    saveCart(state, localStorage);
    expect(loadCart(localStorage)).toEqual(state);
    saveCart(EMPTY_CART, localStorage);
    expect(localStorage.getItem(STORAGE_KEY)).toBeNull();
  });

  it("drops what is unreadable or malformed instead of failing", () => {
    expect(parseCart(null)).toEqual(EMPTY_CART);
    expect(parseCart("{not json")).toEqual(EMPTY_CART);
    expect(parseCart(JSON.stringify({ lines: "nope" }))).toEqual(EMPTY_CART);
    const partly = parseCart(
      JSON.stringify({ lines: [{ ...mug, quantity: 2 }, { productId: 1 }, { ...tee, quantity: -1 }] }),
    );
    expect(partly.lines.map((line) => line.productId)).toEqual(["p-mug"]);
  });

  it("keeps the cart in memory when storage refuses", () => {
    const full = {
      getItem: () => null,
      setItem: () => {
        throw new DOMException("full", "QuotaExceededError");
      },
      removeItem: () => undefined,
    } as unknown as Storage;
    expect(() => saveCart(withLines(), full)).not.toThrow();
    const broken = {
      getItem: () => {
        throw new Error("blocked");
      },
    } as unknown as Storage;
    expect(loadCart(broken)).toEqual(EMPTY_CART);
  });
});
