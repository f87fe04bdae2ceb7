/**
 * The cart as React state, shared by every page: `useCart()` gives the lines
 * and `dispatch` (see cart.ts for the actions). Every change is saved to
 * localStorage, and a change made in another tab is picked up here.
 */

import { createContext, useContext, useEffect, useMemo, useReducer, type ReactNode } from "react";
import { STORAGE_KEY, cartReducer, loadCart, parseCart, saveCart, type CartAction, type CartState } from "./cart";

interface CartContextValue {
  cart: CartState;
  dispatch: (action: CartAction) => void;
}

const CartContext = createContext<CartContextValue | null>(null);

export function CartProvider({ children }: { children: ReactNode }) {
  const [cart, dispatch] = useReducer(cartReducer, undefined, () => loadCart());

  useEffect(() => {
    saveCart(cart);
  }, [cart]);

  useEffect(() => {
    function onStorage(event: StorageEvent) {
      if (event.key === STORAGE_KEY) dispatch({ type: "replace", state: parseCart(event.newValue) });
    }
    window.addEventListener("storage", onStorage);
    return () => window.removeEventListener("storage", onStorage);
  }, []);

  const value = useMemo(() => ({ cart, dispatch }), [cart]);
  return <CartContext.Provider value={value}>{children}</CartContext.Provider>;
}

export function useCart(): CartContextValue {
  const value = useContext(CartContext);
  if (!value) throw new Error("useCart() needs a <CartProvider>");
  return value;
}
