/**
 * `/checkout`: the cart's lines, a "Test card" select (the simulated
 * processor's tokens by name) and "Place order". The order is placed with
 * one Idempotency-Key per attempt (src/checkout/attempt.ts), which the API
 * client sends again on each retry of a 503/429 or lost connection, and
 * which a second press of "Place order" after a failure reuses: at most one
 * order per checkout. On success the cart is emptied and the order page shown.
 */

import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import { api } from "../api/client";
import { describeError, fieldError } from "../api/errors";
import type { Order } from "../api/types";
import { useCart } from "../cart/CartContext";
import { cartTotals, orderItems } from "../cart/cart";
import { TEST_CARDS, attemptFor, clearAttempt } from "../checkout/attempt";
import { ErrorMessage } from "../components/ErrorMessage";
import { Field } from "../components/Field";
import { RequireSignIn } from "../components/RequireSignIn";
import { formatMoney } from "../lib/format";
import { usePageTitle } from "../lib/usePageTitle";

export function CheckoutPage() {
  usePageTitle("Checkout");
  return (
    <RequireSignIn title="Checkout" why="Please sign in to place your order. Your cart is kept.">
      <Checkout />
    </RequireSignIn>
  );
}

function Checkout() {
  const { cart, dispatch } = useCart();
  const navigate = useNavigate();
  const [token, setToken] = useState(TEST_CARDS[0].token);
  const [placing, setPlacing] = useState(false);
  const [error, setError] = useState<unknown>(null);

  if (cart.lines.length === 0) {
    return (
      <section>
        <h1>Checkout</h1>
        <p role="status">Your cart is empty: there is nothing to check out.</p>
        <p>
          <Link to="/">Browse products</Link>
        </p>
      </section>
    );
  }

  const fields = error ? describeError(error).fields : {};

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    if (placing) return;
    const attempt = attemptFor({ items: orderItems(cart), payment: { token } });
    setPlacing(true);
    setError(null);
    try {
      const order = await api.post<Order>("/v1/orders", {
        body: attempt.body,
        idempotencyKey: attempt.idempotencyKey,
      });
      clearAttempt();
      dispatch({ type: "clear" });
      navigate(`/orders/${order.id}`);
    } catch (failure) {
      setError(failure);
      setPlacing(false);
    }
  }

  return (
    <section aria-labelledby="checkout-heading">
      <h1 id="checkout-heading">Checkout</h1>
      <ErrorMessage error={error} title="Your order was not placed." />
      <h2>Your order</h2>
      <ul className="lines card" aria-label="Order lines">
        {cart.lines.map((line, index) => {
          const problem = fieldError(fields, `items.${index}`);
          return (
            <li key={line.productId}>
              <span>
                {line.quantity} × {line.name}
              </span>
              <span className="price">
                {formatMoney({ amount: line.unitPrice.amount * line.quantity, currency: line.unitPrice.currency })}
              </span>
              {problem ? <p className="field-error">{`${line.name}: ${problem}`}</p> : null}
            </li>
          );
        })}
      </ul>
      <p className="price">Total: {cartTotals(cart).map((money) => formatMoney(money)).join(" + ")}</p>
      <form onSubmit={onSubmit} noValidate>
        <h2>Payment</h2>
        <Field
          label="Test card"
          hint="A simulated processor: no real card is charged."
          error={fieldError(fields, "payment")}
        >
          {(props) => (
            <select {...props} value={token} onChange={(event) => setToken(event.target.value)}>
              {TEST_CARDS.map((card) => (
                <option key={card.token} value={card.token}>
                  {card.label}
                </option>
              ))}
            </select>
          )}
        </Field>
        <button type="submit" className="button" disabled={placing} aria-disabled={placing}>
          Place order
        </button>
        {placing ? (
          <p role="status" className="muted">
            Placing your order…
          </p>
        ) : null}
      </form>
    </section>
  );
}
