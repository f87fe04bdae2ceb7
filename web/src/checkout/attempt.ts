/**
 * One Idempotency-Key per checkout attempt, reused on every retry of it.
 *
 * An attempt is the cart's items and the chosen card at the moment "Place
 * order" is first pressed. It is kept in sessionStorage (this tab; it
 * survives a reload during a retry) with its key, so a retry after a 503, a
 * lost connection or a reload sends the same key and the same body, and the
 * server answers the first order instead of placing a second. Changing the
 * cart or the card makes a new attempt with a new key (the same key with
 * another body would be a 409). The attempt is cleared once the order exists.
 */

export interface OrderBody {
  items: { product_id: string; quantity: number }[];
  payment: { token: string };
}

export interface CheckoutAttempt {
  idempotencyKey: string;
  body: OrderBody;
  startedAt: number;
}

export const ATTEMPT_KEY = "agora.checkout.attempt.v1";

/** A random UUID (v4); crypto.randomUUID where there is one. */
export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Same items (in any order) and the same card. */
export function sameBody(a: OrderBody, b: OrderBody): boolean {
  if (a.payment.token !== b.payment.token || a.items.length !== b.items.length) return false;
  const key = (items: OrderBody["items"]) =>
    items
      .map((item) => `${item.product_id}:${item.quantity}`)
      .sort()
      .join(",");
  return key(a.items) === key(b.items);
}

function read(storage: Storage): CheckoutAttempt | null {
  try {
    const value = JSON.parse(storage.getItem(ATTEMPT_KEY) ?? "null") as CheckoutAttempt | null;
    if (value && typeof value.idempotencyKey === "string" && value.body && Array.isArray(value.body.items)) return value;
  } catch {
    // unreadable: a new attempt
  }
  return null;
}

/**
 * The attempt for this body: the stored one when it is for the same body
 * (a retry), else a new one with a new key (stored).
 */
export function attemptFor(
  body: OrderBody,
  storage: Storage = sessionStorage,
  makeKey: () => string = newIdempotencyKey,
  now: () => number = Date.now,
): CheckoutAttempt {
  const stored = read(storage);
  if (stored && sameBody(stored.body, body)) return stored;
  const attempt: CheckoutAttempt = { idempotencyKey: makeKey(), body, startedAt: now() };
  try {
    storage.setItem(ATTEMPT_KEY, JSON.stringify(attempt));
  } catch {
    // Storage full or blocked: the key still holds for retries in this page.
  }
  return attempt;
}

/** The order exists: the next checkout is a new attempt. */
export function clearAttempt(storage: Storage = sessionStorage): void {
  try {
    storage.removeItem(ATTEMPT_KEY);
  } catch {
    // nothing kept
  }
}

/** The simulated processor's test cards, by the names shown (design12.md). */
export const TEST_CARDS: { label: string; token: string }[] = [
  { label: "Visa (succeeds)", token: "tok_visa" },
  { label: "Declined", token: "tok_chargeDeclined" },
  { label: "Processing error", token: "tok_processingError" },
  { label: "Timeout", token: "tok_timeout" },
];
