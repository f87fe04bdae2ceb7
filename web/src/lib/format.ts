/** Display helpers: money in minor units, dates, short ids. */

import type { Money } from "../cart/cart";

// ISO 4217 currencies with no minor unit or three (the rest have two).
const MINOR_DIGITS: Record<string, number> = {
  JPY: 0, KRW: 0, VND: 0, CLP: 0, ISK: 0, UGX: 0, XAF: 0, XOF: 0,
  BHD: 3, KWD: 3, OMR: 3, JOD: 3, TND: 3, IQD: 3, LYD: 3,
};

/** "€12.50" / "$1,299.00" from `{amount: 1250, currency: "EUR"}`. */
export function formatMoney(money: Money | null | undefined, locale?: string): string {
  if (!money) return "";
  const digits = MINOR_DIGITS[money.currency] ?? 2;
  const value = money.amount / 10 ** digits;
  try {
    return new Intl.NumberFormat(locale, {
      style: "currency",
      currency: money.currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(value);
  } catch {
    return `${value.toFixed(digits)} ${money.currency}`;
  }
}

/** Minor units from a decimal string typed by a person ("12.5" EUR -> 1250); null if unreadable. */
export function parseMoneyAmount(text: string, currency: string): number | null {
  const digits = MINOR_DIGITS[currency.toUpperCase()] ?? 2;
  const normalised = text.trim().replace(",", ".");
  if (!/^\d+(\.\d+)?$/.test(normalised)) return null;
  const [whole, fraction = ""] = normalised.split(".");
  if (fraction.length > digits) return null;
  return Number(whole) * 10 ** digits + Number(fraction.padEnd(digits, "0") || "0");
}

/** Minor units as the decimal string a form shows (1250 EUR -> "12.50"). */
export function moneyAmountText(amount: number, currency: string): string {
  const digits = MINOR_DIGITS[currency.toUpperCase()] ?? 2;
  return (amount / 10 ** digits).toFixed(digits);
}

/** A timestamp for people: "2 Dec 2026, 10:15". */
export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** The first 8 characters of a UUID: "Order 3f2a9c1d". */
export function shortId(id: string): string {
  return id.slice(0, 8);
}
