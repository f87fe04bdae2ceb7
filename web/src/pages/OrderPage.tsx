/**
 * `/orders/:id`: the order following its saga live. Polls `GET /v1/orders/{id}`
 * with backoff (src/orders/status.ts pollDelay) until a terminal status;
 * `role="status"` "Order status" shows (and announces) the status word, a
 * "Cancellation reason" says why an order ended, and "Cancel order" is offered
 * while the customer may cancel (409 cancellation_window_closed explained).
 */

import { useCallback, useEffect, useRef, useState } from "react";
import { Link, useParams } from "react-router";
import { ApiError, api } from "../api/client";
import type { Order, Payment } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";
import { RequireSignIn } from "../components/RequireSignIn";
import { formatDate, formatMoney, shortId } from "../lib/format";
import { STATUS_TEXT, endReason, isCancellable, isTerminal, pollDelay } from "../orders/status";
import { usePageTitle } from "../lib/usePageTitle";

export function OrderPage() {
  const { id = "" } = useParams();
  usePageTitle(`Order ${shortId(id)}`);
  return (
    <RequireSignIn title="Order">
      <OrderView />
    </RequireSignIn>
  );
}

function OrderView() {
  const { id = "" } = useParams();
  const [order, setOrder] = useState<Order | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [generation, setGeneration] = useState(0);
  const [cancelling, setCancelling] = useState(false);
  const [cancelError, setCancelError] = useState<unknown>(null);
  const mounted = useRef(true);

  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);

  // Follow the saga: look again with backoff until the order is terminal.
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | null = null;
    let attempt = 0;
    let lastStatus: string | null = null;

    async function look() {
      try {
        const current = await api.get<Order>(`/v1/orders/${encodeURIComponent(id)}`, { signal: controller.signal });
        if (controller.signal.aborted) return;
        setOrder(current);
        setError(null);
        if (current.status !== lastStatus) {
          attempt = 0; // progress: look again soon
          lastStatus = current.status;
        }
        if (isTerminal(current.status)) return;
      } catch (failure) {
        if (controller.signal.aborted) return;
        setError(failure);
        if (failure instanceof ApiError && failure.status === 404) return;
        if (failure instanceof ApiError && failure.status === 401) return;
      }
      timer = setTimeout(look, pollDelay(attempt));
      attempt += 1;
    }
    void look();
    return () => {
      controller.abort();
      if (timer !== null) clearTimeout(timer);
    };
  }, [id, generation]);

  const cancel = useCallback(async () => {
    setCancelling(true);
    setCancelError(null);
    try {
      const updated = await api.post<Order>(`/v1/orders/${encodeURIComponent(id)}/cancel`);
      if (!mounted.current) return;
      setOrder((previous) => (previous ? { ...previous, ...updated } : updated));
      setGeneration((n) => n + 1); // follow the compensation (refund) to its end
    } catch (failure) {
      if (mounted.current) setCancelError(failure);
    } finally {
      if (mounted.current) setCancelling(false);
    }
  }, [id]);

  if (!order) {
    if (error) {
      const notFound = error instanceof ApiError && error.status === 404;
      return (
        <section>
          <h1>Order {shortId(id)}</h1>
          {notFound ? <p role="alert">There is no such order in your account.</p> : <ErrorMessage error={error} title="Could not load this order." onRetry={() => setGeneration((n) => n + 1)} />}
          <p>
            <Link to="/orders">Your order history</Link>
          </p>
        </section>
      );
    }
    return <Loading label="Loading your order…" />;
  }

  const reason = endReason(order);
  const payment = order.payment && (order.payment as { state?: string }).state !== "unavailable" ? (order.payment as Payment) : null;
  const following = !isTerminal(order.status);

  return (
    <section aria-labelledby="order-heading" className="stack">
      <h1 id="order-heading">Order {shortId(order.id)}</h1>
      <div className="card stack">
        <p>
          Status:{" "}
          <strong role="status" aria-label="Order status" aria-live="polite" className={`badge ${badgeClass(order.status)}`}>
            {order.status}
          </strong>
        </p>
        <p>{STATUS_TEXT[order.status]}</p>
        {following ? (
          <p className="muted">
            <span className="spinner" aria-hidden="true" /> This page follows your order as it progresses.
          </p>
        ) : null}
        {reason ? (
          <p role="note" aria-label="Cancellation reason" className="alert">
            {reason}
          </p>
        ) : null}
        {error ? <ErrorMessage error={error} title="Could not refresh this order." /> : null}
        <ErrorMessage error={cancelError} title="The order was not cancelled." />
        {isCancellable(order.status) ? (
          <div>
            <button type="button" className="button danger" onClick={() => void cancel()} disabled={cancelling}>
              Cancel order
            </button>
          </div>
        ) : null}
      </div>

      <div className="card">
        <h2>Items</h2>
        <ul className="lines">
          {order.items.map((line) => (
            <li key={line.product_id}>
              <span>
                {line.quantity} × <Link to={`/products/${line.product_id}`}>{line.name}</Link>
              </span>
              <span className="price">{formatMoney(line.line_total)}</span>
            </li>
          ))}
        </ul>
        <p className="price">Total: {formatMoney(order.total)}</p>
        <p className="muted">Placed {formatDate(order.created_at)}</p>
      </div>

      {order.payment && (order.payment as { state?: string }).state === "unavailable" ? (
        <p className="muted">The payment details are unavailable right now; they will show when billing answers.</p>
      ) : null}
      {payment ? (
        <div className="card">
          <h2>Payment</h2>
          <p>
            {formatMoney(payment.amount)}: {payment.status.replace(/_/g, " ")}
            {payment.refunded.amount > 0 ? `, ${formatMoney(payment.refunded)} refunded` : ""}
          </p>
          {payment.receipt ? <p>Receipt {payment.receipt.number}</p> : null}
        </div>
      ) : null}

      {order.history.length > 0 ? (
        <div className="card">
          <h2>History</h2>
          <ol className="timeline">
            {order.history.map((entry, index) => (
              <li key={`${entry.at}-${index}`}>
                <strong>{entry.status}</strong> <span className="muted">{formatDate(entry.at)}</span>
                {entry.message ? <div>{entry.message}</div> : null}
              </li>
            ))}
          </ol>
        </div>
      ) : null}
      <p>
        <Link to="/orders">Your order history</Link>
      </p>
    </section>
  );
}

function badgeClass(status: string): string {
  if (status === "confirmed") return "ok";
  if (["cancelled", "rejected", "expired", "payment_failed"].includes(status)) return "bad";
  return "wait";
}
