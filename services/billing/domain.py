"""Billing rules with no I/O: money, payment states, refunds, disputes, receipts, views.

Nothing here touches Nameko, a database session or the payment provider, so
every rule is unit-tested without brokers. Rows are read by attribute (the
ORM objects of ``models.py``, or any object with the same attributes).
"""

import datetime
import uuid

from services.chassis import cursors, values
from services.chassis.errors import Conflict, ValidationError
from services.chassis.values import Money, isoformat_utc, parse_uuid

# Money and its bounds are the chassis's, the same as the catalog's prices.
CURRENCY_PATTERN = values.CURRENCY_PATTERN
CURRENCY_MESSAGE = values.CURRENCY_MESSAGE
MAX_AMOUNT = values.MAX_AMOUNT
REASON_MAX = 500
# list_payments: a page's size, by default and at most.
LIMIT_DEFAULT = 20
LIMIT_MAX = 100
CURSOR_MAX = cursors.CURSOR_MAX

# --- statuses ----------------------------------------------------------------

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
REFUNDED = "refunded"
PARTIALLY_REFUNDED = "partially_refunded"
VOIDED = "voided"
STATUSES = (PENDING, SUCCEEDED, FAILED, REFUNDED, PARTIALLY_REFUNDED, VOIDED)
# Money was taken and some of it is still with us: it can be refunded or disputed.
CAPTURED = (SUCCEEDED, PARTIALLY_REFUNDED)

DISPUTE_OPEN = "open"
DISPUTE_WON = "won"
DISPUTE_LOST = "lost"
DISPUTE_STATUSES = (DISPUTE_OPEN, DISPUTE_WON, DISPUTE_LOST)
OUTCOMES = (DISPUTE_WON, DISPUTE_LOST)

# payment_failed.code (and PAYMENT.failure.code).
CARD_DECLINED = "card_declined"
PROCESSING_ERROR = "processing_error"
TIMEOUT = "timeout"
FAILURE_CODES = (CARD_DECLINED, PROCESSING_ERROR, TIMEOUT)
# A charge's outcome as agora_billing_charges_total counts it, by failure code.
CHARGE_OUTCOMES = {None: SUCCEEDED, CARD_DECLINED: "declined", TIMEOUT: "timeout"}


def charge_outcome(failure_code):
    """``succeeded`` (no failure code), ``declined``, ``timeout`` or ``error``."""
    return CHARGE_OUTCOMES.get(failure_code, "error")


# refund_issued.reason of the refunds billing makes itself when an order closes.
ORDER_CANCELLED = "order_cancelled"
ORDER_EXPIRED = "order_expired"

# Payment and refund ids that must be the same on every delivery of the event
# that creates them are name-based (UUID version 5) in these namespaces; they are
# also the idempotency keys sent to the payment provider, so a charge or refund
# retried after a crash (before billing committed) is recognised, never repeated.
PAYMENT_NAMESPACE = uuid.UUID("6f1c2b7e-5d0a-4c8e-9a43-2f8b1d9e7c10")
REFUND_NAMESPACE = uuid.UUID("0d5e8a3c-91b4-4f27-8c6d-7a2e4b1f9e53")


def canonical_id(value):
    """The lower-case canonical string of a UUID given in any spelling, or None."""
    parsed = parse_uuid(value)
    return str(parsed) if parsed else None


def payment_id_for(order_id):
    """The one payment id of an order (name-based, so every delivery computes the same)."""
    return uuid.uuid5(PAYMENT_NAMESPACE, str(uuid.UUID(str(order_id))))


def refund_id_for(payment_id, key):
    """The refund id for ``key`` on a payment: the same key, the same refund."""
    return uuid.uuid5(REFUND_NAMESPACE, f"{payment_id}\n{key}")


# Refund idempotency keys as stored: a client's key under "client:", billing's own
# under "billing:", so no client key can ever match billing's.
CLOSING_REFUND_KEY = "billing:order-closed"


def client_refund_key(key):
    """The stored form of an Idempotency-Key a client sent with a refund (None: none)."""
    return None if key is None else f"client:{key}"


def charged(payment):
    """The payment's amount as Money (None for a tombstone that was never requested)."""
    if payment.amount is None:
        return None
    return Money(payment.amount, payment.currency)


# --- charging ----------------------------------------------------------------


def new_payment(payment_id, data, now):
    """Column values of the pending payment for a validated payment_requested ``data``."""
    amount = Money.from_dict(data["amount"])
    return {
        "id": payment_id,
        "order_id": uuid.UUID(data["order_id"]),
        "user_id": uuid.UUID(data["user_id"]),
        "amount": amount.amount,
        "currency": amount.currency,
        "status": PENDING,
        "refunded_amount": 0,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def tombstone(payment_id, order_id, user_id, now):
    """Column values of a voided payment for an order that closed before any request.

    It has no amount; a payment_requested that comes later finds it and charges
    nothing (it records the amount that was asked for)."""
    return {
        "id": payment_id,
        "order_id": uuid.UUID(str(order_id)),
        "user_id": uuid.UUID(str(user_id)),
        "amount": None,
        "currency": None,
        "status": VOIDED,
        "refunded_amount": 0,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def is_tombstone(payment):
    """A voided payment no one ever asked to charge: not shown by the RPCs."""
    return payment.status == VOIDED and payment.amount is None


def past_deadline(deadline_at, now):
    """True if the ISO-8601 ``deadline_at`` of a payment request is not after ``now``."""
    if not deadline_at:
        return False
    deadline = datetime.datetime.fromisoformat(deadline_at.replace("Z", "+00:00"))
    return deadline <= now


def may_charge(payment):
    """Only a pending payment with no provider charge yet goes to the provider."""
    return payment.status == PENDING and payment.provider_charge_id is None


def backoff_delay(base, attempt):
    """Seconds to wait after failed attempt number ``attempt`` (0-based): base * 2^attempt."""
    return base * (2**attempt)


def backoff_schedule(base, attempts):
    """The waits between ``attempts`` tries: one fewer than the tries."""
    return [backoff_delay(base, n) for n in range(max(attempts - 1, 0))]


def failure_reason(code, message, attempts):
    """The human-readable failure reason stored and sent with payment_failed."""
    message = (message or code).strip() or code
    if code in (PROCESSING_ERROR, TIMEOUT) and attempts > 1:
        message = f"{message} (after {attempts} attempts)"
    return message[:REASON_MAX]


# --- refunds -----------------------------------------------------------------


def held_by_disputes(disputes):
    """Minor units a bank holds (open disputes) or took back (lost ones)."""
    return sum(d.amount for d in disputes if d.status in (DISPUTE_OPEN, DISPUTE_LOST))


def refundable(payment, disputes=()):
    """What can still be refunded (or disputed): amount - refunded - held by disputes.

    Money the bank holds for an open dispute or returned on a lost one must not
    go back to the customer a second time as a refund."""
    if payment.amount is None or payment.status not in CAPTURED:
        return 0
    return max(payment.amount - payment.refunded_amount - held_by_disputes(disputes), 0)


def refund_amount(payment, disputes, requested):
    """The Money to refund for a request of ``requested`` (a dict, or None: all that remains).

    Conflict when the payment has not (or no longer) money to give back, or the
    amount is more than remains; ValidationError for another currency."""
    if payment.status not in CAPTURED:
        raise Conflict(
            f"a {payment.status} payment cannot be refunded",
            {"status": payment.status},
        )
    return _part_of_what_remains(
        payment,
        refundable(payment, disputes),
        requested,
        kind="refund",
        bound="refundable",
        nothing_left="nothing remains to refund (the rest is held by a dispute)",
        too_much="the refund is more than remains of the payment",
    )


def _part_of_what_remains(payment, remaining, requested, kind, bound, nothing_left, too_much):
    """``requested`` (a Money dict) if it fits in ``remaining``, or all of ``remaining``
    when None; Conflict (details name ``bound``) when it does not fit or nothing
    remains, ValidationError ("invalid <kind>") for another currency."""
    if requested is None:
        if remaining == 0:
            raise Conflict(nothing_left, {bound: str(remaining)})
        return Money(remaining, payment.currency)
    amount = Money.from_dict(requested)
    if amount.currency != payment.currency:
        raise ValidationError(
            f"invalid {kind}",
            {"amount.currency": f"must be {payment.currency}, the payment's currency"},
        )
    if amount.amount > remaining:
        raise Conflict(too_much, {"amount": f"must be at most {remaining}", bound: str(remaining)})
    return amount


def status_after_refund(payment):
    """refunded once all of it went back, partially_refunded before that."""
    return REFUNDED if payment.refunded_amount >= payment.amount else PARTIALLY_REFUNDED


def same_refund_request(payment, refund, requested, reason):
    """Whether a replayed keyed refund request asks for what the stored refund did
    (no amount: "what remained", which the stored refund was)."""
    if reason != refund.reason:
        return False
    if requested is None:
        return True
    amount = Money.from_dict(requested)
    return (amount.amount, amount.currency) == (refund.amount, payment.currency)


# --- disputes ----------------------------------------------------------------


def dispute_amount(payment, disputes, requested):
    """The Money of a new dispute: ``requested``, or all that is not refunded (nor held).

    Only a succeeded or partially refunded payment can be disputed, one open
    dispute at a time, never for more than remains; Conflict otherwise."""
    if payment.status not in CAPTURED:
        raise Conflict(
            f"a {payment.status} payment cannot be disputed",
            {"status": payment.status},
        )
    if any(d.status == DISPUTE_OPEN for d in disputes):
        raise Conflict("the payment already has an open dispute", {"status": payment.status})
    return _part_of_what_remains(
        payment,
        refundable(payment, disputes),
        requested,
        kind="dispute",
        bound="disputable",
        nothing_left="nothing remains to dispute",
        too_much="the dispute is for more than remains of the payment",
    )


def check_resolvable(dispute):
    """Only an open dispute is resolved; Conflict for a won or lost one."""
    if dispute.status != DISPUTE_OPEN:
        raise Conflict(
            f"the dispute is already {dispute.status}",
            {"status": dispute.status},
        )


# --- receipts ----------------------------------------------------------------


def receipt_number(year, seq):
    """Human-readable and unique: ``R-2026-000123`` (seq from a database sequence)."""
    return f"R-{year:04d}-{seq:06d}"


def receipt_body(payment, items):
    """What the receipt stores: the order's lines, the amount and the customer."""
    return {
        "items": list(items),
        "amount": charged(payment).to_dict(),
        "user_id": str(payment.user_id),
    }


# --- views ---------------------------------------------------------------------


def _optional_time(moment):
    return isoformat_utc(moment) if moment is not None else None


def refund_view(refund, currency):
    return {
        "id": str(refund.id),
        "amount": Money(refund.amount, currency).to_dict(),
        "reason": refund.reason,
        "created_at": isoformat_utc(refund.created_at),
    }


def dispute_view(dispute, currency):
    return {
        "id": str(dispute.id),
        "amount": Money(dispute.amount, currency).to_dict(),
        "reason": dispute.reason,
        "status": dispute.status,
        "created_at": isoformat_utc(dispute.created_at),
        "resolved_at": _optional_time(dispute.resolved_at),
    }


def receipt_view(receipt):
    return {
        "id": str(receipt.id),
        "number": receipt.number,
        "issued_at": isoformat_utc(receipt.issued_at),
        "amount": receipt.body["amount"],
        "items": receipt.body["items"],
    }


def listing_cursors(key: bytes):
    """The cursors of ``list_payments``, signed with the service's cursor key
    (``services.billing.cursor_key``): ``.decode(cursor)`` gives
    ``(created_at, payment_id)``, ``.page(rows, limit)`` the page and its ``next_cursor``."""
    return cursors.TimeIdCursor(key, "1")


def payment_view(payment, refunds=(), disputes=(), receipt=None):
    """The public payment dict (the ``PAYMENT`` contract)."""
    failure = None
    if payment.failure_code is not None:
        failure = {"code": payment.failure_code, "reason": payment.failure_reason or ""}
    return {
        "id": str(payment.id),
        "order_id": str(payment.order_id),
        "user_id": str(payment.user_id),
        "amount": charged(payment).to_dict(),
        "status": payment.status,
        "refunded": Money(payment.refunded_amount, payment.currency).to_dict(),
        "failure": failure,
        "attempts": payment.attempts,
        "created_at": isoformat_utc(payment.created_at),
        "updated_at": isoformat_utc(payment.updated_at),
        "refunds": [refund_view(r, payment.currency) for r in refunds],
        "disputes": [dispute_view(d, payment.currency) for d in disputes],
        "receipt": receipt_view(receipt) if receipt is not None else None,
    }


# --- event payloads ------------------------------------------------------------


def _ids(payment):
    return {
        "order_id": str(payment.order_id),
        "payment_id": str(payment.id),
        "user_id": str(payment.user_id),
    }


def payment_succeeded_event(payment):
    return {**_ids(payment), "amount": charged(payment).to_dict()}


def payment_failed_event(payment):
    return {
        **_ids(payment),
        "amount": charged(payment).to_dict(),
        "code": payment.failure_code,
        "reason": payment.failure_reason,
        "attempts": payment.attempts,
    }


def receipt_issued_event(payment, receipt):
    return {
        "receipt_id": str(receipt.id),
        "number": receipt.number,
        **_ids(payment),
        "amount": receipt.body["amount"],
        "issued_at": isoformat_utc(receipt.issued_at),
        "items": receipt.body["items"],
    }


def refund_issued_event(payment, refund):
    return {
        "refund_id": str(refund.id),
        **_ids(payment),
        "amount": Money(refund.amount, payment.currency).to_dict(),
        "reason": refund.reason,
        "payment_status": payment.status,
    }


def dispute_opened_event(payment, dispute):
    return {
        "dispute_id": str(dispute.id),
        **_ids(payment),
        "amount": Money(dispute.amount, payment.currency).to_dict(),
        "reason": dispute.reason,
    }


def dispute_resolved_event(payment, dispute):
    return {
        "dispute_id": str(dispute.id),
        **_ids(payment),
        "amount": Money(dispute.amount, payment.currency).to_dict(),
        "outcome": dispute.status,
    }
