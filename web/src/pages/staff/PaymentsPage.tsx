/**
 * /staff/payments (billing:admin): every payment, newest first, by cursor
 * pages (`GET /v1/payments`), filtered by status (`?status=` in the URL).
 */

import { Link, useSearchParams } from "react-router";
import { api } from "../../api/client";
import type { Page, Payment } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Loading } from "../../components/Loading";
import { Pagination, useCursorPages } from "../../components/Pagination";
import { formatDate, formatMoney, shortId } from "../../lib/format";
import { useApi } from "../../lib/useApi";
import { RequireScope, StaffPage, StatusBadge } from "./common";
import { PAYMENT_STATUSES } from "./forms";

export function PaymentsPage() {
  return (
    <RequireScope scope="billing:admin" title="Payments">
      <PaymentList />
    </RequireScope>
  );
}

function PaymentList() {
  const [params, setParams] = useSearchParams();
  const status = params.get("status") ?? "";
  const pages = useCursorPages();
  const page = useApi(
    (signal) =>
      api.get<Page<Payment>>("/v1/payments", {
        query: { status, cursor: pages.cursor, limit: 20 },
        signal,
      }),
    [status, pages.cursor],
  );

  return (
    <StaffPage title="Payments">
      <div className="field staff-filter">
        <label htmlFor="staff-payment-status">Status</label>
        <select
          id="staff-payment-status"
          value={status}
          onChange={(event) => {
            pages.reset();
            setParams(event.target.value ? { status: event.target.value } : {});
          }}
        >
          <option value="">All statuses</option>
          {PAYMENT_STATUSES.map((value) => (
            <option key={value} value={value}>
              {value.replace(/_/g, " ")}
            </option>
          ))}
        </select>
      </div>
      {page.error ? (
        <ErrorMessage error={page.error} title="Could not load the payments." onRetry={page.reload} />
      ) : null}
      {page.loading && !page.value ? <Loading label="Loading payments…" /> : null}
      {page.value ? (
        page.value.items.length === 0 ? (
          <p>{status ? `No payment is ${status.replace(/_/g, " ")}.` : "There are no payments yet."}</p>
        ) : (
          <div className="table-wrap" tabIndex={0} role="region" aria-label="Payments table">
            <table className="wide">
              <caption>
                Payments{status ? ` (${status.replace(/_/g, " ")})` : ""}, newest first
                {page.loading ? <span className="muted"> (updating…)</span> : null}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Payment</th>
                  <th scope="col">Created</th>
                  <th scope="col">Status</th>
                  <th scope="col" className="num">
                    Amount
                  </th>
                  <th scope="col" className="num">
                    Refunded
                  </th>
                  <th scope="col">Disputes</th>
                  <th scope="col">Order</th>
                </tr>
              </thead>
              <tbody>
                {page.value.items.map((payment) => (
                  <tr key={payment.id}>
                    <th scope="row">
                      <Link
                        to={`/staff/payments/${payment.id}`}
                        aria-label={`Payment ${shortId(payment.id)}`}
                      >
                        <code>{shortId(payment.id)}</code>
                      </Link>
                    </th>
                    <td>{formatDate(payment.created_at)}</td>
                    <td>
                      <StatusBadge status={payment.status} />
                    </td>
                    <td className="num">{formatMoney(payment.amount)}</td>
                    <td className="num">
                      {payment.refunded.amount > 0 ? formatMoney(payment.refunded) : "—"}
                    </td>
                    <td>{openDisputes(payment)}</td>
                    <td>
                      <code>{shortId(payment.order_id)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : null}
      <Pagination pages={pages} nextCursor={page.value?.next_cursor} label="Payment pages" />
    </StaffPage>
  );
}

function openDisputes(payment: Payment): string {
  const disputes = (payment.disputes ?? []) as { status?: string }[];
  if (disputes.length === 0) return "—";
  const open = disputes.filter((d) => d.status === "open").length;
  return open > 0 ? `${open} open` : `${disputes.length} resolved`;
}
