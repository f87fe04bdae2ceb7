import { describe, expect, it } from "vitest";
import type { Product } from "../../api/types";
import {
  amountText,
  canRefund,
  minorDigits,
  parseAmount,
  parseCount,
  parseCurrency,
  productChanges,
  productFieldErrors,
  productFormValues,
  refundable,
  validateDispute,
  validateProduct,
  validateRefund,
  validateStock,
} from "./forms";

const product: Product = {
  id: "7d3f2a9c-1d2e-4f5a-8b6c-0d1e2f3a4b5c",
  sku: "MUG-1",
  name: "Mug",
  description: "A mug",
  price: { amount: 1250, currency: "EUR" },
  active: true,
  created_at: "2026-12-02T10:00:00Z",
  updated_at: "2026-12-02T10:00:00Z",
  images: [],
};

describe("parseAmount (decimal text to minor units)", () => {
  it.each([
    ["12.50", "EUR", 1250],
    ["12.5", "EUR", 1250],
    ["12", "EUR", 1200],
    ["0", "EUR", 0],
    ["0.07", "EUR", 7],
    ["12,5", "EUR", 1250],
    ["1,299.00", "USD", 129900],
    [" 3.10 ", "EUR", 310],
    ["12.", "EUR", 1200],
    ["1200", "JPY", 1200],
    ["1.234", "KWD", 1234],
    ["10000000", "EUR", 1_000_000_000],
  ])("%s %s -> %i", (text, currency, amount) => {
    expect(parseAmount(text, currency)).toEqual({ ok: true, value: amount });
  });

  it.each([
    ["", "EUR", "Enter a price."],
    ["abc", "EUR", "Enter the price as a number, like 12.50."],
    ["-1", "EUR", "Enter the price as a number, like 12.50."],
    ["1e3", "EUR", "Enter the price as a number, like 12.50."],
    ["12.345", "EUR", "EUR has 2 decimal places at most."],
    ["12.5", "JPY", "JPY has no decimal places: enter a whole number, like 1200."],
    ["10000000.01", "EUR", "The price is too large (at most 10000000.00)."],
    ["99999999999999999999", "EUR", "The price is too large (at most 10000000.00)."],
  ])("refuses %j %s", (text, currency, error) => {
    expect(parseAmount(text, currency)).toEqual({ ok: false, error });
  });

  it("round-trips with amountText", () => {
    for (const amount of [0, 1, 99, 1250, 999999]) {
      expect(parseAmount(amountText(amount, "EUR"), "EUR")).toEqual({ ok: true, value: amount });
    }
    expect(amountText(1250, "EUR")).toBe("12.50");
    expect(amountText(1200, "JPY")).toBe("1200");
  });

  it("knows the currencies' minor digits", () => {
    expect(minorDigits("EUR")).toBe(2);
    expect(minorDigits("JPY")).toBe(0);
    expect(minorDigits("BHD")).toBe(3);
  });
});

describe("parseCurrency", () => {
  it("upper-cases and checks ISO 4217 shape", () => {
    expect(parseCurrency(" eur ")).toBe("EUR");
    expect(parseCurrency("EURO")).toBeNull();
    expect(parseCurrency("E1R")).toBeNull();
  });
});

describe("validateProduct", () => {
  const values = { sku: "mug-2", name: " Big mug ", description: "", price: "9.90", currency: "eur" };

  it("builds the create body in minor units", () => {
    expect(validateProduct(values, true)).toEqual({
      ok: true,
      body: { sku: "MUG-2", name: "Big mug", description: "", price: { amount: 990, currency: "EUR" } },
    });
  });

  it("leaves the SKU out of an edit", () => {
    const result = validateProduct({ ...values, sku: "" }, false);
    expect(result.ok).toBe(true);
    expect(result.ok && "sku" in result.body).toBe(false);
  });

  it("shows every problem by field", () => {
    const result = validateProduct(
      { sku: "-BAD", name: "  ", description: "x".repeat(5001), price: "1.234", currency: "euro" },
      true,
    );
    expect(result).toEqual({
      ok: false,
      errors: {
        sku: "Use 2-64 characters of A-Z, 0-9 and '-', not starting with '-'.",
        name: "Enter a name.",
        description: "Use at most 5000 characters.",
        currency: "Enter a three-letter currency code, like EUR.",
        price: "EUR has 2 decimal places at most.",
      },
    });
  });

  it("asks for a missing SKU and price", () => {
    const result = validateProduct({ ...values, sku: "", price: "" }, true);
    expect(result).toEqual({ ok: false, errors: { sku: "Enter a SKU.", price: "Enter a price." } });
  });
});

describe("productChanges (the PATCH body)", () => {
  it("holds only what changed", () => {
    const body = { name: "Mug", description: "A mug", price: { amount: 1300, currency: "EUR" } };
    expect(productChanges(product, body)).toEqual({ price: { amount: 1300, currency: "EUR" } });
    expect(productChanges(product, { ...body, name: "Cup", price: product.price })).toEqual({ name: "Cup" });
  });

  it("is null when nothing changed", () => {
    expect(
      productChanges(product, { name: "Mug", description: "A mug", price: { ...product.price } }),
    ).toBeNull();
  });

  it("fills the form from the product", () => {
    expect(productFormValues(product)).toEqual({
      sku: "MUG-1",
      name: "Mug",
      description: "A mug",
      price: "12.50",
      currency: "EUR",
    });
    expect(productFormValues(null).currency).toBe("EUR");
  });
});

describe("productFieldErrors (the API's paths to the form's fields)", () => {
  it("maps nested paths and keeps the rest", () => {
    expect(
      productFieldErrors({
        "price.amount": "must be <= 1000000000",
        "price.currency": "must be a three-letter upper-case ISO 4217 code",
        sku: "already exists",
        active: "must be of type boolean",
      }),
    ).toEqual({
      fields: {
        price: "must be <= 1000000000",
        currency: "must be a three-letter upper-case ISO 4217 code",
        sku: "already exists",
      },
      other: ["active: must be of type boolean"],
    });
  });
});

describe("stock", () => {
  it("parses counts", () => {
    expect(parseCount("12")).toEqual({ ok: true, value: 12 });
    expect(parseCount("0")).toEqual({ ok: true, value: 0 });
    expect(parseCount("-1").ok).toBe(false);
    expect(parseCount("1.5").ok).toBe(false);
    expect(parseCount("").ok).toBe(false);
    expect(parseCount("1000000001").ok).toBe(false);
  });

  it("validates the PUT body", () => {
    expect(validateStock(" main ", "5")).toEqual({ ok: true, body: { warehouse: "main", on_hand: 5 } });
    expect(validateStock("Main", "x")).toEqual({
      ok: false,
      errors: {
        warehouse: "Use 1-32 characters of a-z, 0-9 and '-', not starting with '-'.",
        on_hand: "Enter a whole number, 0 or more.",
      },
    });
  });
});

describe("refunds and disputes", () => {
  const payment = {
    amount: { amount: 5000, currency: "EUR" },
    refunded: { amount: 1500, currency: "EUR" },
    status: "partially_refunded",
  };

  it("knows what remains", () => {
    expect(refundable(payment)).toEqual({ amount: 3500, currency: "EUR" });
    expect(canRefund(payment)).toBe(true);
    expect(canRefund({ ...payment, status: "failed" })).toBe(false);
    expect(refundable({ ...payment, status: "failed" })).toEqual({ amount: 0, currency: "EUR" });
    expect(refundable({ ...payment, status: "pending" }).amount).toBe(0);
    expect(canRefund({ ...payment, refunded: payment.amount, status: "succeeded" })).toBe(false);
  });

  it("sends no amount for a full refund", () => {
    expect(validateRefund(true, "", "", refundable(payment))).toEqual({ ok: true, body: {} });
    expect(validateRefund(true, "ignored", " damaged ", refundable(payment))).toEqual({
      ok: true,
      body: { reason: "damaged" },
    });
  });

  it("checks a partial amount against what remains", () => {
    const remaining = refundable(payment);
    expect(validateRefund(false, "10", "", remaining)).toEqual({
      ok: true,
      body: { amount: { amount: 1000, currency: "EUR" } },
    });
    expect(validateRefund(false, "35.01", "", remaining)).toEqual({
      ok: false,
      errors: { amount: "At most 35.00 EUR can be refunded." },
    });
    expect(validateRefund(false, "0", "", remaining)).toEqual({
      ok: false,
      errors: { amount: "Enter an amount greater than zero." },
    });
    expect(validateRefund(false, "", "", remaining)).toEqual({
      ok: false,
      errors: { amount: "Enter a refund amount." },
    });
  });

  it("needs a dispute's reason; its amount is optional", () => {
    expect(validateDispute("fraud", "", "EUR")).toEqual({ ok: true, body: { reason: "fraud" } });
    expect(validateDispute("fraud", "5", "EUR")).toEqual({
      ok: true,
      body: { reason: "fraud", amount: { amount: 500, currency: "EUR" } },
    });
    expect(validateDispute(" ", "x", "EUR")).toEqual({
      ok: false,
      errors: {
        reason: "Enter the reason the bank gave.",
        amount: "Enter the disputed amount as a number, like 12.50.",
      },
    });
  });
});
