/** `/orders`: your orders, newest first, in cursor pages. */

import { Link } from "react-router";
import { api } from "../api/client";
import type { Order, Page } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";
import { Pagination, useCursorPages } from "../components/Pagination";
import { RequireSignIn } from "../components/RequireSignIn";
import { formatDate, formatMoney, shortId } from "../lib/format";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";

export const ORDERS_PAGE_SIZE = 10;

export function OrdersPage() {
  usePageTitle("Your orders");
  return (
    <RequireSignIn title="Your orders">
      <OrderList />
    </RequireSignIn>
  );
}

function OrderList() {
  const pages = useCursorPages();
  const orders = useApi(
    (signal) => api.get<Page<Order>>("/v1/orders", { query: { cursor: pages.cursor, limit: ORDERS_PAGE_SIZE }, signal }),
    [pages.cursor],
  );
  const items = orders.value?.items ?? [];
  return (
    <section aria-labelledby="orders-heading">
      <h1 id="orders-heading">Your orders</h1>
      <ErrorMessage error={orders.error} title="Could not load your orders." onRetry={orders.reload} />
      {orders.loading && !orders.value ? <Loading label="Loading your orders…" /> : null}
      {!orders.loading && !orders.error && items.length === 0 ? (
        <p role="status">
          You have no orders yet. <Link to="/">Browse products</Link>
        </p>
      ) : null}
      {items.length > 0 ? (
        <div className="table-wrap card">
          <table>
            <caption className="visually-hidden">Your orders, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Order</th>
                <th scope="col">Placed</th>
                <th scope="col">Items</th>
                <th scope="col">Total</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {items.map((order) => (
                <tr key={order.id}>
                  <td>
                    <Link to={`/orders/${order.id}`}>Order {shortId(order.id)}</Link>
                  </td>
                  <td>{formatDate(order.created_at)}</td>
                  <td>{order.items.reduce((sum, line) => sum + line.quantity, 0)}</td>
                  <td className="price">{formatMoney(order.total)}</td>
                  <td>{order.status}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pagination pages={pages} nextCursor={orders.value?.next_cursor} label="Order pages" />
    </section>
  );
}
