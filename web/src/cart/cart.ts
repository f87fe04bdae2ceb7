/**
 * The cart: pure reducer functions over a list of lines, and their
 * persistence in localStorage (a cart is no secret, and it should outlive a
 * reload or a sign-in round trip). Prices here are what the product page
 * showed; the order's prices are the server's, at placement.
 */

/** Money as the API spells it: minor units (cents) and an ISO 4217 code. */
export interface Money {
  amount: number;
  currency: string;
}

export interface CartLine {
  productId: string;
  sku: string;
  name: string;
  unitPrice: Money;
  quantity: number;
  /** The product's list image, when it has one. */
  imageUrl?: string | null;
}

export interface CartState {
  lines: CartLine[];
}

/** The most of one product a line holds (the API's own bound is checked at placement). */
export const MAX_LINE_QUANTITY = 99;

export const EMPTY_CART: CartState = { lines: [] };

export type CartAction =
  | { type: "add"; line: Omit<CartLine, "quantity">; quantity: number }
  | { type: "setQuantity"; productId: string; quantity: number }
  | { type: "remove"; productId: string }
  | { type: "clear" }
  | { type: "replace"; state: CartState };

function clampQuantity(quantity: number): number {
  if (!Number.isFinite(quantity)) return 1;
  return Math.min(MAX_LINE_QUANTITY, Math.max(1, Math.floor(quantity)));
}

/** The next cart. Adding a product already in the cart adds to its quantity. */
export function cartReducer(state: CartState, action: CartAction): CartState {
  switch (action.type) {
    case "add": {
      const quantity = clampQuantity(action.quantity);
      const existing = state.lines.find((line) => line.productId === action.line.productId);
      if (existing) {
        return {
          lines: state.lines.map((line) =>
            line.productId === action.line.productId
              ? { ...line, ...action.line, quantity: clampQuantity(line.quantity + quantity) }
              : line,
          ),
        };
      }
      return { lines: [...state.lines, { ...action.line, quantity }] };
    }
    case "setQuantity": {
      if (!Number.isFinite(action.quantity)) return state;
      if (action.quantity < 1) {
        return { lines: state.lines.filter((line) => line.productId !== action.productId) };
      }
      return {
        lines: state.lines.map((line) =>
          line.productId === action.productId ? { ...line, quantity: clampQuantity(action.quantity) } : line,
        ),
      };
    }
    case "remove":
      return { lines: state.lines.filter((line) => line.productId !== action.productId) };
    case "clear":
      return EMPTY_CART;
    case "replace":
      return action.state;
  }
}

/** Items in the cart (the sum of quantities). */
export function itemCount(state: CartState): number {
  return state.lines.reduce((sum, line) => sum + line.quantity, 0);
}

/**
 * The total per currency (a cart may mix currencies; the order service then
 * decides). Returns one Money per currency, in the lines' order.
 */
export function cartTotals(state: CartState): Money[] {
  const totals = new Map<string, number>();
  for (const line of state.lines) {
    totals.set(line.unitPrice.currency, (totals.get(line.unitPrice.currency) ?? 0) + line.unitPrice.amount * line.quantity);
  }
  return [...totals].map(([currency, amount]) => ({ currency, amount }));
}

/** The order body's items: one per product. */
export function orderItems(state: CartState): { product_id: string; quantity: number }[] {
  return state.lines.map((line) => ({ product_id: line.productId, quantity: line.quantity }));
}

// --- persistence ---------------------------------------------------------------

export const STORAGE_KEY = "agora.cart.v1";

function isLine(value: unknown): value is CartLine {
  if (!value || typeof value !== "object") return false;
  const line = value as Record<string, unknown>;
  const price = line.unitPrice as Record<string, unknown> | undefined;
  return (
    typeof line.productId === "string" &&
    typeof line.sku === "string" &&
    typeof line.name === "string" &&
    typeof line.quantity === "number" &&
    Number.isInteger(line.quantity) &&
    line.quantity >= 1 &&
    !!price &&
    typeof price.amount === "number" &&
    typeof price.currency === "string"
  );
}

/** Reads a stored cart; anything unreadable or malformed is dropped, never thrown. */
export function parseCart(text: string | null): CartState {
  if (!text) return EMPTY_CART;
  try {
    const value = JSON.parse(text) as unknown;
    const lines = (value as { lines?: unknown }).lines;
    if (!Array.isArray(lines)) return EMPTY_CART;
    return {
      lines: lines.filter(isLine).map((line) => ({ ...line, quantity: clampQuantity(line.quantity) })),
    };
  } catch {
    return EMPTY_CART;
  }
}

/** The cart kept in `storage` (localStorage by default), or an empty one. */
export function loadCart(storage: Storage | null = safeLocalStorage()): CartState {
  try {
    return parseCart(storage?.getItem(STORAGE_KEY) ?? null);
  } catch {
    return EMPTY_CART;
  }
}

/** Keeps the cart; a full or blocked storage loses only the persistence, not the cart. */
export function saveCart(state: CartState, storage: Storage | null = safeLocalStorage()): void {
  try {
    if (state.lines.length === 0) storage?.removeItem(STORAGE_KEY);
    else storage?.setItem(STORAGE_KEY, JSON.stringify(state));
  } catch {
    // Quota exceeded or storage disabled: the cart lives on in memory.
  }
}

function safeLocalStorage(): Storage | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}
