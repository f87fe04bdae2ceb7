/**
 * `/cart`: the lines (each with a "Quantity for <name>" spinbutton and a
 * "Remove <name>" button), the total, and "Checkout". The cart is kept in
 * localStorage, so it survives a reload and the sign-in round trip.
 */

import { Link, useNavigate } from "react-router";
import { useCart } from "../cart/CartContext";
import { MAX_LINE_QUANTITY, cartTotals, itemCount } from "../cart/cart";
import { formatMoney } from "../lib/format";
import { usePageTitle } from "../lib/usePageTitle";

export function CartPage() {
  const { cart, dispatch } = useCart();
  const navigate = useNavigate();
  const totals = cartTotals(cart);
  usePageTitle("Cart");

  if (cart.lines.length === 0) {
    return (
      <section>
        <h1>Your cart</h1>
        <p role="status">Your cart is empty.</p>
        <p>
          <Link to="/">Browse products</Link>
        </p>
      </section>
    );
  }

  return (
    <section aria-labelledby="cart-heading">
      <h1 id="cart-heading">Your cart</h1>
      <p className="muted">
        {itemCount(cart)} {itemCount(cart) === 1 ? "item" : "items"}
      </p>
      <ul className="lines card" aria-label="Cart lines">
        {cart.lines.map((line) => {
          const inputId = `qty-${line.productId}`;
          return (
            <li key={line.productId}>
              <div>
                <Link to={`/products/${line.productId}`}>{line.name}</Link>
                <div className="muted">{formatMoney(line.unitPrice)} each</div>
              </div>
              <div className="row">
                <label htmlFor={inputId} className="visually-hidden">
                  Quantity for {line.name}
                </label>
                <input
                  id={inputId}
                  className="input"
                  type="number"
                  inputMode="numeric"
                  min={1}
                  max={MAX_LINE_QUANTITY}
                  step={1}
                  value={line.quantity}
                  onChange={(event) => {
                    const value = Number(event.target.value);
                    if (event.target.value !== "" && Number.isFinite(value)) {
                      dispatch({ type: "setQuantity", productId: line.productId, quantity: Math.max(1, value) });
                    }
                  }}
                />
                <span className="price">
                  {formatMoney({ amount: line.unitPrice.amount * line.quantity, currency: line.unitPrice.currency })}
                </span>
                <button
                  type="button"
                  className="button secondary"
                  onClick={() => dispatch({ type: "remove", productId: line.productId })}
                >
                  Remove {line.name}
                </button>
              </div>
            </li>
          );
        })}
      </ul>
      <p className="price" aria-live="polite">
        Total: {totals.map((money) => formatMoney(money)).join(" + ")}
      </p>
      <div className="row">
        <button type="button" className="button" onClick={() => navigate("/checkout")}>
          Checkout
        </button>
      </div>
    </section>
  );
}
