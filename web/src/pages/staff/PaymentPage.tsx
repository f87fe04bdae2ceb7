/**
 * /staff/payments/:id (billing:admin): one payment (`GET /v1/payments/<id>`)
 * with its refunds, disputes and receipt; a refund, full (no amount: the API
 * refunds what remains) or partial, confirmed before it is sent and sent with
 * an Idempotency-Key kept for that refund, so a retry refunds once; opening a
 * dispute; resolving an open dispute as won or lost (asks first).
 */

import { useState, type FormEvent } from "react";
import { useParams } from "react-router";
import { api, ApiError } from "../../api/client";
import { fieldError } from "../../api/errors";
import type { Money, Payment } from "../../api/types";
import { randomString } from "../../auth/pkce";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Field } from "../../components/Field";
import { Loading } from "../../components/Loading";
import { formatDate, formatMoney, shortId } from "../../lib/format";
import { useApi } from "../../lib/useApi";
import { ConfirmAction, Notice, RequireScope, StaffPage, StatusBadge } from "./common";
import {
  CAPTURED_STATUSES,
  canRefund,
  refundable,
  validateDispute,
  validateRefund,
  type MoneyFormErrors,
} from "./forms";

/** services/billing/schemas.py REFUND, DISPUTE, RECEIPT (api/types.ts leaves them open). */
export interface Refund {
  id: string;
  amount: Money;
  reason: string;
  created_at: string;
}

export interface Dispute {
  id: string;
  amount: Money;
  reason: string;
  status: "open" | "won" | "lost";
  created_at: string;
  resolved_at: string | null;
}

export interface ReceiptLine {
  product_id: string;
  sku: string;
  name: string;
  quantity: number;
  unit_price: Money;
  line_total: Money;
}

export interface Receipt {
  id: string;
  number: string;
  issued_at: string;
  amount: Money;
  items?: ReceiptLine[];
}

const BACK = { to: "/staff/payments", label: "Payments" };

export function PaymentPage() {
  return (
    <RequireScope scope="billing:admin" title="Payment">
      <PaymentDetail />
    </RequireScope>
  );
}

function PaymentDetail() {
  const { id = "" } = useParams();
  const payment = useApi(
    (signal) => api.get<Payment>(`/v1/payments/${encodeURIComponent(id)}`, { signal }),
    [id],
  );
  const [notice, setNotice] = useState<string | null>(null);

  if (!payment.value) {
    return (
      <StaffPage title="Payment" back={BACK}>
        {payment.error ? (
          <ErrorMessage error={payment.error} title="Could not load the payment." onRetry={payment.reload} />
        ) : (
          <Loading label="Loading the payment…" />
        )}
      </StaffPage>
    );
  }
  const current = payment.value;
  const changed = (next: Payment, message: string) => {
    payment.setValue(next);
    setNotice(message);
  };
  const refunds = (current.refunds ?? []) as Refund[];
  const disputes = (current.disputes ?? []) as Dispute[];
  const receipt = current.receipt as Receipt | null;
  const captured = CAPTURED_STATUSES.has(current.status);

  return (
    <StaffPage title={`Payment ${shortId(current.id)}`} back={BACK}>
      <Notice message={notice} />
      <div className="card">
        <dl className="staff-details">
          <dt>Status</dt>
          <dd>
            <StatusBadge status={current.status} />
          </dd>
          <dt>Amount</dt>
          <dd>{formatMoney(current.amount)}</dd>
          <dt>Refunded</dt>
          <dd>{formatMoney(current.refunded)}</dd>
          <dt>Refundable</dt>
          <dd>{formatMoney(refundable(current))}</dd>
          <dt>Payment id</dt>
          <dd>
            <code>{current.id}</code>
          </dd>
          <dt>Order</dt>
          <dd>
            <code>{current.order_id}</code>
          </dd>
          <dt>Customer</dt>
          <dd>
            <code>{current.user_id}</code>
          </dd>
          <dt>Attempts</dt>
          <dd>{current.attempts}</dd>
          {current.failure ? (
            <>
              <dt>Failure</dt>
              <dd>
                {current.failure.reason} (<code>{current.failure.code}</code>)
              </dd>
            </>
          ) : null}
          <dt>Created</dt>
          <dd>{formatDate(current.created_at)}</dd>
          <dt>Updated</dt>
          <dd>{formatDate(current.updated_at)}</dd>
        </dl>
      </div>

      <section className="card" aria-labelledby="refunds-heading">
        <h2 id="refunds-heading">Refunds</h2>
        {refunds.length === 0 ? (
          <p className="muted">No refunds.</p>
        ) : (
          <div className="table-wrap" tabIndex={0} role="region" aria-label="Refunds table">
            <table>
              <caption>Refunds of this payment</caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col" className="num">
                    Amount
                  </th>
                  <th scope="col">Reason</th>
                </tr>
              </thead>
              <tbody>
                {refunds.map((refund) => (
                  <tr key={refund.id}>
                    <th scope="row">{formatDate(refund.created_at)}</th>
                    <td className="num">{formatMoney(refund.amount)}</td>
                    <td>{refund.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {canRefund(current) ? (
          <RefundForm payment={current} onDone={changed} />
        ) : (
          <p className="muted">
            {captured
              ? "Everything has been refunded."
              : `A ${current.status.replace(/_/g, " ")} payment cannot be refunded.`}
          </p>
        )}
      </section>

      <section className="card" aria-labelledby="disputes-heading">
        <h2 id="disputes-heading">Disputes</h2>
        {disputes.length === 0 ? (
          <p className="muted">No disputes.</p>
        ) : (
          <DisputeTable payment={current} disputes={disputes} onDone={changed} />
        )}
        {captured ? (
          <DisputeForm payment={current} onDone={changed} />
        ) : (
          <p className="muted">Only a captured payment can be disputed.</p>
        )}
      </section>

      <section className="card" aria-labelledby="receipt-heading">
        <h2 id="receipt-heading">Receipt</h2>
        {receipt ? (
          <ReceiptView receipt={receipt} />
        ) : (
          <p className="muted">No receipt (the payment has not succeeded).</p>
        )}
      </section>
    </StaffPage>
  );
}

function RefundForm({
  payment,
  onDone,
}: {
  payment: Payment;
  onDone: (p: Payment, message: string) => void;
}) {
  const remaining = refundable(payment);
  const [full, setFull] = useState(true);
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  const [errors, setErrors] = useState<MoneyFormErrors>({});
  const [failure, setFailure] = useState<unknown>(null);
  // The refund waiting for confirmation, with the Idempotency-Key of this one refund.
  const [pending, setPending] = useState<{ body: { amount?: Money; reason?: string }; key: string } | null>(
    null,
  );
  const [sending, setSending] = useState(false);

  const review = (event: FormEvent) => {
    event.preventDefault();
    setFailure(null);
    const checked = validateRefund(full, amount, reason, remaining);
    if (!checked.ok) {
      setErrors(checked.errors);
      return;
    }
    setErrors({});
    const same = pending && JSON.stringify(pending.body) === JSON.stringify(checked.body);
    setPending({ body: checked.body, key: same ? pending.key : `refund-${randomString(32)}` });
  };

  const send = async () => {
    if (!pending) return;
    setSending(true);
    setFailure(null);
    try {
      const next = await api.post<Payment>(`/v1/payments/${payment.id}/refunds`, {
        body: pending.body,
        idempotencyKey: pending.key,
      });
      setPending(null);
      setAmount("");
      setReason("");
      onDone(next, `Refunded ${formatMoney(pending.body.amount ?? remaining)}.`);
    } catch (error) {
      const amountProblem = error instanceof ApiError ? fieldError(error.details, "amount") : undefined;
      if (amountProblem) setErrors({ amount: amountProblem });
      // Keep the pending refund and its key: "Confirm refund" again is a safe retry.
      setFailure(error);
    } finally {
      setSending(false);
    }
  };

  return (
    <form className="staff-form" noValidate onSubmit={review} aria-labelledby="refund-form-heading">
      <h3 id="refund-form-heading">Refund</h3>
      <fieldset className="staff-radios">
        <legend>How much</legend>
        <label>
          <input
            type="radio"
            name="refund-kind"
            checked={full}
            onChange={() => {
              setFull(true);
              setPending(null);
            }}
          />
          Full refund of what remains ({formatMoney(remaining)})
        </label>
        <label>
          <input
            type="radio"
            name="refund-kind"
            checked={!full}
            onChange={() => {
              setFull(false);
              setPending(null);
            }}
          />
          Partial refund
        </label>
      </fieldset>
      {!full ? (
        <Field
          label="Refund amount"
          error={errors.amount}
          hint={`In ${remaining.currency}, at most ${formatMoney(remaining)}.`}
        >
          {(props) => (
            <input
              {...props}
              type="text"
              inputMode="decimal"
              autoComplete="off"
              value={amount}
              onChange={(event) => {
                setAmount(event.target.value);
                setPending(null);
              }}
            />
          )}
        </Field>
      ) : null}
      <Field label="Reason (optional)" error={errors.reason} hint="Kept with the refund.">
        {(props) => (
          <input
            {...props}
            type="text"
            maxLength={500}
            value={reason}
            onChange={(event) => {
              setReason(event.target.value);
              setPending(null);
            }}
          />
        )}
      </Field>
      {pending ? (
        <div className="confirm" role="group" aria-label="Confirm refund">
          <p>
            Refund {formatMoney(pending.body.amount ?? remaining)} to the customer? This cannot be undone.
          </p>
          <div className="row">
            <button
              type="button"
              className="button danger"
              disabled={sending}
              aria-busy={sending || undefined}
              onClick={() => void send()}
              autoFocus
            >
              {sending ? "Refunding…" : "Confirm refund"}
            </button>
            <button
              type="button"
              className="button secondary"
              disabled={sending}
              onClick={() => setPending(null)}
            >
              Cancel
            </button>
          </div>
        </div>
      ) : (
        <button type="submit" className="button">
          Refund
        </button>
      )}
      <ErrorMessage error={failure} title="Not refunded." onRetry={pending ? () => void send() : undefined} />
    </form>
  );
}

function DisputeForm({
  payment,
  onDone,
}: {
  payment: Payment;
  onDone: (p: Payment, message: string) => void;
}) {
  const [reason, setReason] = useState("");
  const [amount, setAmount] = useState("");
  const [errors, setErrors] = useState<MoneyFormErrors>({});
  const [failure, setFailure] = useState<unknown>(null);
  const [sending, setSending] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setFailure(null);
    const checked = validateDispute(reason, amount, payment.amount.currency);
    if (!checked.ok) {
      setErrors(checked.errors);
      return;
    }
    setErrors({});
    setSending(true);
    try {
      const next = await api.post<Payment>(`/v1/payments/${payment.id}/disputes`, { body: checked.body });
      setReason("");
      setAmount("");
      onDone(next, "Dispute opened.");
    } catch (error) {
      if (error instanceof ApiError) {
        const fields: MoneyFormErrors = {};
        fields.reason = fieldError(error.details, "reason");
        fields.amount = fieldError(error.details, "amount");
        setErrors(fields);
      }
      setFailure(error);
    } finally {
      setSending(false);
    }
  };

  return (
    <form
      className="staff-form"
      noValidate
      onSubmit={(event) => void submit(event)}
      aria-labelledby="dispute-form-heading"
    >
      <h3 id="dispute-form-heading">Open a dispute</h3>
      <Field label="Dispute reason" error={errors.reason} hint="What the customer's bank said.">
        {(props) => (
          <input
            {...props}
            type="text"
            maxLength={500}
            value={reason}
            onChange={(event) => setReason(event.target.value)}
          />
        )}
      </Field>
      <Field
        label="Disputed amount (optional)"
        error={errors.amount}
        hint={`In ${payment.amount.currency}. Leave empty to dispute the whole payment.`}
      >
        {(props) => (
          <input
            {...props}
            type="text"
            inputMode="decimal"
            autoComplete="off"
            value={amount}
            onChange={(event) => setAmount(event.target.value)}
          />
        )}
      </Field>
      <button type="submit" className="button secondary" disabled={sending} aria-busy={sending || undefined}>
        {sending ? "Opening…" : "Open dispute"}
      </button>
      <ErrorMessage error={failure} title="The dispute was not opened." />
    </form>
  );
}

function DisputeTable({
  payment,
  disputes,
  onDone,
}: {
  payment: Payment;
  disputes: Dispute[];
  onDone: (p: Payment, message: string) => void;
}) {
  const [failure, setFailure] = useState<unknown>(null);

  const resolve = async (dispute: Dispute, outcome: "won" | "lost") => {
    setFailure(null);
    try {
      const next = await api.post<Payment>(`/v1/payments/${payment.id}/disputes/${dispute.id}/resolution`, {
        body: { outcome },
      });
      onDone(next, `Dispute ${shortId(dispute.id)} resolved: ${outcome}.`);
    } catch (error) {
      setFailure(error);
    }
  };

  return (
    <>
      <ErrorMessage
        error={failure}
        title={failure instanceof ApiError ? "The dispute was not resolved." : undefined}
      />
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Disputes table">
        <table>
          <caption>Disputes of this payment</caption>
          <thead>
            <tr>
              <th scope="col">Dispute</th>
              <th scope="col">Opened</th>
              <th scope="col" className="num">
                Amount
              </th>
              <th scope="col">Reason</th>
              <th scope="col">Status</th>
              <th scope="col">Resolve</th>
            </tr>
          </thead>
          <tbody>
            {disputes.map((dispute) => (
              <tr key={dispute.id}>
                <th scope="row">
                  <code>{shortId(dispute.id)}</code>
                </th>
                <td>{formatDate(dispute.created_at)}</td>
                <td className="num">{formatMoney(dispute.amount)}</td>
                <td>{dispute.reason}</td>
                <td>
                  <StatusBadge status={dispute.status} />
                  {dispute.resolved_at ? (
                    <span className="muted"> {formatDate(dispute.resolved_at)}</span>
                  ) : null}
                </td>
                <td>
                  {dispute.status === "open" ? (
                    <div className="row">
                      <ConfirmAction
                        label="Won"
                        ariaLabel={`Resolve dispute ${shortId(dispute.id)} as won`}
                        confirmLabel="Confirm won"
                        question={`Dispute ${shortId(dispute.id)} won: the money stays with the shop?`}
                        onConfirm={() => resolve(dispute, "won")}
                      />
                      <ConfirmAction
                        label="Lost"
                        ariaLabel={`Resolve dispute ${shortId(dispute.id)} as lost`}
                        confirmLabel="Confirm lost"
                        question={`Dispute ${shortId(dispute.id)} lost: ${formatMoney(dispute.amount)} goes back to the customer?`}
                        danger
                        onConfirm={() => resolve(dispute, "lost")}
                      />
                    </div>
                  ) : (
                    "—"
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function ReceiptView({ receipt }: { receipt: Receipt }) {
  return (
    <>
      <dl className="staff-details">
        <dt>Number</dt>
        <dd>{receipt.number}</dd>
        <dt>Issued</dt>
        <dd>{formatDate(receipt.issued_at)}</dd>
        <dt>Amount</dt>
        <dd>{formatMoney(receipt.amount)}</dd>
      </dl>
      {receipt.items && receipt.items.length > 0 ? (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Receipt items table">
          <table>
            <caption>Items on receipt {receipt.number}</caption>
            <thead>
              <tr>
                <th scope="col">Item</th>
                <th scope="col">SKU</th>
                <th scope="col" className="num">
                  Quantity
                </th>
                <th scope="col" className="num">
                  Unit price
                </th>
                <th scope="col" className="num">
                  Total
                </th>
              </tr>
            </thead>
            <tbody>
              {receipt.items.map((line) => (
                <tr key={`${line.product_id}-${line.sku}`}>
                  <th scope="row">{line.name}</th>
                  <td>
                    <code>{line.sku}</code>
                  </td>
                  <td className="num">{line.quantity}</td>
                  <td className="num">{formatMoney(line.unit_price)}</td>
                  <td className="num">{formatMoney(line.line_total)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
  );
}
