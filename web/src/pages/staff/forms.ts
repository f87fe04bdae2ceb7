/**
 * The back office's form logic, pure so it is tested without a browser:
 * prices typed as decimals and sent in minor units, the checks the API will
 * make (the same patterns and limits as services/*\/schemas.py, so most
 * mistakes are shown beside their field before a request), the PATCH body of
 * an edit, and the API's field paths mapped to the form's fields.
 */

import type { FieldErrors } from "../../api/errors";
import type { Money, Product } from "../../api/types";
import { moneyAmountText } from "../../lib/format";

// services/chassis/schemas.py SKU_PATTERN, services/chassis/values.py, services/catalog/domain.py,
// services/inventory/domain.py, services/billing/domain.py.
export const SKU_PATTERN = /^[A-Z0-9][A-Z0-9-]{1,63}$/;
export const SKU_MESSAGE = "Use 2-64 characters of A-Z, 0-9 and '-', not starting with '-'.";
export const CURRENCY_PATTERN = /^[A-Z]{3}$/;
export const WAREHOUSE_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const WAREHOUSE_MESSAGE = "Use 1-32 characters of a-z, 0-9 and '-', not starting with '-'.";
export const NAME_MAX = 200;
export const DESCRIPTION_MAX = 5000;
export const MAX_AMOUNT = 1_000_000_000;
export const MAX_ON_HAND = 1_000_000_000;
export const REASON_MAX = 500;

/** Decimal places of a currency's minor unit (EUR 2, JPY 0, KWD 3). */
export function minorDigits(currency: string): number {
  return (moneyAmountText(0, currency).split(".")[1] ?? "").length;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * A decimal amount typed by a person, in minor units: "12.5" EUR -> 1250,
 * "1,299.00" -> 129900, "12,50" -> 1250 (a lone comma is a decimal comma),
 * "1200" JPY -> 1200. Refuses more decimals than the currency has, signs,
 * and amounts over the API's maximum.
 */
export function parseAmount(text: string, currency: string, label = "price"): Parsed<number> {
  const digits = minorDigits(currency);
  let normalised = text.trim().replace(/[\s_]/g, "");
  if (normalised === "") return { ok: false, error: `Enter a ${label}.` };
  if (normalised.includes(",") && normalised.includes(".")) normalised = normalised.replace(/,/g, "");
  else if ((normalised.match(/,/g) ?? []).length === 1) normalised = normalised.replace(",", ".");
  const example = digits === 0 ? "1200" : `12.${"5".padEnd(digits, "0")}`;
  if (!/^\d+(\.\d*)?$/.test(normalised)) {
    return { ok: false, error: `Enter the ${label} as a number, like ${example}.` };
  }
  const [whole, fraction = ""] = normalised.split(".");
  if (fraction.length > digits) {
    return {
      ok: false,
      error:
        digits === 0
          ? `${currency} has no decimal places: enter a whole number, like ${example}.`
          : `${currency} has ${digits} decimal places at most.`,
    };
  }
  const wholeDigits = whole.replace(/^0+(?=\d)/, "");
  const tooLarge = {
    ok: false as const,
    error: `The ${label} is too large (at most ${moneyAmountText(MAX_AMOUNT, currency)}).`,
  };
  if (wholeDigits.length > 12) return tooLarge;
  const amount = Number(wholeDigits) * 10 ** digits + Number(fraction.padEnd(digits, "0") || "0");
  if (amount > MAX_AMOUNT) return tooLarge;
  return { ok: true, value: amount };
}

/** Minor units as a form shows them: 1250 EUR -> "12.50". */
export function amountText(amount: number, currency: string): string {
  return moneyAmountText(amount, currency);
}

/** A currency typed by a person: trimmed, upper case; null when it is no ISO 4217 code. */
export function parseCurrency(text: string): string | null {
  const code = text.trim().toUpperCase();
  return CURRENCY_PATTERN.test(code) ? code : null;
}

// --- products ---------------------------------------------------------------

export interface ProductFormValues {
  sku: string;
  name: string;
  description: string;
  /** The price as typed: a decimal ("12.50"). */
  price: string;
  currency: string;
}

export type ProductField = keyof ProductFormValues;
export type ProductErrors = Partial<Record<ProductField, string>>;

export interface ProductBody {
  sku?: string;
  name: string;
  description: string;
  price: Money;
}

/** The form's values for a product (or empty ones for a new product). */
export function productFormValues(product?: Product | null, defaultCurrency = "EUR"): ProductFormValues {
  if (!product) return { sku: "", name: "", description: "", price: "", currency: defaultCurrency };
  return {
    sku: product.sku,
    name: product.name,
    description: product.description,
    price: amountText(product.price.amount, product.price.currency),
    currency: product.price.currency,
  };
}

/**
 * Checks the form as the API would and builds the request body; `creating`
 * includes the SKU (it cannot change afterwards). Errors are by field.
 */
export function validateProduct(
  values: ProductFormValues,
  creating: boolean,
): { ok: true; body: ProductBody } | { ok: false; errors: ProductErrors } {
  const errors: ProductErrors = {};
  const sku = values.sku.trim().toUpperCase();
  if (creating) {
    if (!sku) errors.sku = "Enter a SKU.";
    else if (!SKU_PATTERN.test(sku)) errors.sku = SKU_MESSAGE;
  }
  const name = values.name.trim();
  if (!name) errors.name = "Enter a name.";
  else if (name.length > NAME_MAX) errors.name = `Use at most ${NAME_MAX} characters.`;
  if (values.description.length > DESCRIPTION_MAX) {
    errors.description = `Use at most ${DESCRIPTION_MAX} characters.`;
  }
  const currency = parseCurrency(values.currency);
  if (!currency) errors.currency = "Enter a three-letter currency code, like EUR.";
  let amount: number | null = null;
  const parsed = parseAmount(values.price, currency ?? "EUR");
  if (parsed.ok) amount = parsed.value;
  else errors.price = parsed.error;
  if (Object.keys(errors).length > 0 || amount === null || !currency) return { ok: false, errors };
  const body: ProductBody = { name, description: values.description, price: { amount, currency } };
  if (creating) body.sku = sku;
  return { ok: true, body };
}

/** The PATCH body of an edit: only what changed (null when nothing did). */
export function productChanges(original: Product, body: ProductBody): Partial<ProductBody> | null {
  const changes: Partial<ProductBody> = {};
  if (body.name !== original.name) changes.name = body.name;
  if (body.description !== original.description) changes.description = body.description;
  if (body.price.amount !== original.price.amount || body.price.currency !== original.price.currency) {
    changes.price = body.price;
  }
  return Object.keys(changes).length > 0 ? changes : null;
}

/**
 * The API's field errors (paths such as "price.amount") as the product form's
 * fields ("SKU already exists" once the field puts its label first); paths
 * the form has no field for are returned in `other`.
 */
export function productFieldErrors(details: FieldErrors): { fields: ProductErrors; other: string[] } {
  const fields: ProductErrors = {};
  const other: string[] = [];
  for (const [path, problem] of Object.entries(details)) {
    const field = PRODUCT_PATHS[path] ?? PRODUCT_PATHS[path.split(".")[0]];
    // Kept as the API words it ("already exists"): the Field prefixes its label.
    if (field && !fields[field]) fields[field] = problem;
    else if (!field) other.push(`${path}: ${problem}`);
  }
  return { fields, other };
}

const PRODUCT_PATHS: Record<string, ProductField> = {
  sku: "sku",
  name: "name",
  description: "description",
  price: "price",
  "price.amount": "price",
  "price.currency": "currency",
};

/** "must be at most 200 characters" -> "Must be at most 200 characters." */
export function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return trimmed;
  const first = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

// --- stock --------------------------------------------------------------------

export type StockErrors = Partial<Record<"warehouse" | "on_hand", string>>;

/** A whole number of items, 0 to the API's maximum. */
export function parseCount(text: string): Parsed<number> {
  const trimmed = text.trim();
  if (trimmed === "") return { ok: false, error: "Enter a quantity." };
  if (!/^\d+$/.test(trimmed)) return { ok: false, error: "Enter a whole number, 0 or more." };
  const value = Number(trimmed);
  if (value > MAX_ON_HAND) return { ok: false, error: `At most ${MAX_ON_HAND.toLocaleString("en")}.` };
  return { ok: true, value };
}

/** The PUT /v1/inventory/<sku> body: {warehouse, on_hand}. */
export function validateStock(
  warehouse: string,
  onHand: string,
): { ok: true; body: { warehouse: string; on_hand: number } } | { ok: false; errors: StockErrors } {
  const errors: StockErrors = {};
  const name = warehouse.trim();
  if (!name) errors.warehouse = "Enter a warehouse.";
  else if (!WAREHOUSE_PATTERN.test(name)) errors.warehouse = WAREHOUSE_MESSAGE;
  const count = parseCount(onHand);
  if (!count.ok) errors.on_hand = count.error;
  if (!count.ok || Object.keys(errors).length > 0) return { ok: false, errors };
  return { ok: true, body: { warehouse: name, on_hand: count.value } };
}

// --- payments -----------------------------------------------------------------

/** Payment statuses (services/billing/domain.py STATUSES). */
export const PAYMENT_STATUSES = [
  "pending",
  "succeeded",
  "failed",
  "refunded",
  "partially_refunded",
  "voided",
] as const;

/** Statuses of a payment whose money was taken (services/billing/domain.py CAPTURED). */
export const CAPTURED_STATUSES: ReadonlySet<string> = new Set(["succeeded", "partially_refunded"]);

/** What can still be refunded: a captured payment's amount less what was refunded; else nothing. */
export function refundable(payment: { amount: Money; refunded: Money; status: string }): Money {
  const left = CAPTURED_STATUSES.has(payment.status)
    ? Math.max(0, payment.amount.amount - payment.refunded.amount)
    : 0;
  return { amount: left, currency: payment.amount.currency };
}

/** Whether the API may refund this payment (it was captured and money remains). */
export function canRefund(payment: { amount: Money; refunded: Money; status: string }): boolean {
  return refundable(payment).amount > 0;
}

export type MoneyFormErrors = Partial<Record<"amount" | "reason", string>>;

/**
 * The POST /v1/payments/<id>/refunds body: no amount for a full refund (the
 * API refunds what remains), else a positive amount no more than remains.
 */
export function validateRefund(
  full: boolean,
  amountInput: string,
  reason: string,
  remaining: Money,
): { ok: true; body: { amount?: Money; reason?: string } } | { ok: false; errors: MoneyFormErrors } {
  const errors: MoneyFormErrors = {};
  const body: { amount?: Money; reason?: string } = {};
  if (!full) {
    const parsed = parseAmount(amountInput, remaining.currency, "refund amount");
    if (!parsed.ok) errors.amount = parsed.error;
    else if (parsed.value <= 0) errors.amount = "Enter an amount greater than zero.";
    else if (parsed.value > remaining.amount) {
      errors.amount = `At most ${moneyText(remaining)} can be refunded.`;
    } else body.amount = { amount: parsed.value, currency: remaining.currency };
  }
  const why = reason.trim();
  if (why.length > REASON_MAX) errors.reason = `Use at most ${REASON_MAX} characters.`;
  else if (why) body.reason = why;
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return { ok: true, body };
}

/** The POST /v1/payments/<id>/disputes body: a reason, and an amount unless the whole payment. */
export function validateDispute(
  reason: string,
  amountInput: string,
  currency: string,
): { ok: true; body: { reason: string; amount?: Money } } | { ok: false; errors: MoneyFormErrors } {
  const errors: MoneyFormErrors = {};
  const why = reason.trim();
  if (!why) errors.reason = "Enter the reason the bank gave.";
  else if (why.length > REASON_MAX) errors.reason = `Use at most ${REASON_MAX} characters.`;
  let amount: Money | undefined;
  if (amountInput.trim()) {
    const parsed = parseAmount(amountInput, currency, "disputed amount");
    if (!parsed.ok) errors.amount = parsed.error;
    else if (parsed.value <= 0) errors.amount = "Enter an amount greater than zero, or leave it empty.";
    else amount = { amount: parsed.value, currency };
  }
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return { ok: true, body: amount ? { reason: why, amount } : { reason: why } };
}

/** "12.50 EUR": an amount as a form's messages name it. */
export function moneyText(money: Money): string {
  return `${amountText(money.amount, money.currency)} ${money.currency}`;
}
