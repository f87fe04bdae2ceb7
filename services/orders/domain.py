"""Order rules with no I/O: the saga's status machine, pricing, payloads, cursors, views.

Nothing here touches Nameko, a database session or a broker, so every rule is
unit-tested without them. The service locks an order row, asks :func:`decide`
(or :func:`advance`) what an incoming event means for the order in its current
status, and writes what it is told.

Duplicate products in one order are *refused*, not merged: each line of the
request is one line of the order, so every error names the item the client
sent (``items.3.product_id``), and ``max_quantity`` bounds what was asked for.
"""

import datetime
import hashlib
import json
import uuid
from dataclasses import dataclass

from services.chassis import cursors, values
from services.chassis.errors import CancellationWindowClosed, Conflict, ValidationError
from services.chassis.values import isoformat_utc, whole

# --- statuses and the status machine -----------------------------------------

PENDING = "pending"
RESERVED = "reserved"
PAID = "paid"
CONFIRMED = "confirmed"
REJECTED = "rejected"
PAYMENT_FAILED = "payment_failed"
CANCELLED = "cancelled"
EXPIRED = "expired"

STATUSES = (PENDING, RESERVED, PAID, CONFIRMED, REJECTED, PAYMENT_FAILED, CANCELLED, EXPIRED)
# Terminal: the saga is over (a customer may still cancel a confirmed order).
TERMINAL = frozenset({CONFIRMED, REJECTED, CANCELLED, EXPIRED})
# Still waiting for the saga: these are swept once past their deadline.
OPEN = tuple(status for status in STATUSES if status not in TERMINAL)
# The only statuses in which an order keeps its payment token: billing reads it
# (get_payment_token) while the order is reserved, and the order forgets it as
# soon as billing reports the outcome or the order closes. No event carries it.
HOLDS_TOKEN = frozenset({PENDING, RESERVED})

# Every allowed change of status, as data; :data:`RULES` may use no other.
TRANSITIONS = {
    PENDING: frozenset({RESERVED, REJECTED, CANCELLED, EXPIRED}),
    RESERVED: frozenset({PAID, PAYMENT_FAILED, CANCELLED, EXPIRED}),
    PAID: frozenset({CONFIRMED, CANCELLED, EXPIRED}),
    PAYMENT_FAILED: frozenset({CANCELLED}),
    CONFIRMED: frozenset({CANCELLED}),
    REJECTED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}

# Triggers: the incoming events ("<service>.<event>") and two of the orders
# service's own, the customer's cancel and the saga deadline (the sweep).
STOCK_RESERVED = "inventory.stock_reserved"
RESERVATION_REJECTED = "inventory.reservation_rejected"
RESERVATION_COMMITTED = "inventory.reservation_committed"
RESERVATION_COMMIT_FAILED = "inventory.reservation_commit_failed"
RESERVATION_RELEASED = "inventory.reservation_released"
RESERVATION_EXPIRED = "inventory.reservation_expired"
PAYMENT_SUCCEEDED = "billing.payment_succeeded"
PAYMENT_FAILED_EVENT = "billing.payment_failed"
CUSTOMER_CANCEL = "customer_cancel"
DEADLINE = "deadline"

EVENT_TRIGGERS = (
    STOCK_RESERVED,
    RESERVATION_REJECTED,
    RESERVATION_COMMITTED,
    RESERVATION_COMMIT_FAILED,
    RESERVATION_RELEASED,
    RESERVATION_EXPIRED,
    PAYMENT_SUCCEEDED,
    PAYMENT_FAILED_EVENT,
)
TRIGGERS = (*EVENT_TRIGGERS, CUSTOMER_CANCEL, DEADLINE)

# Reasons recorded on an order (``reason``) and sent in order_cancelled.
REASON_CUSTOMER = "customer"
REASON_PAYMENT_FAILED = "payment_failed"
REASON_COMMIT_FAILED = "commit_failed"
REASON_OUT_OF_STOCK = "out_of_stock"
REASON_DEADLINE = "deadline"
REASON_RESERVATION_EXPIRED = "reservation_expired"
CANCEL_REASONS = (REASON_CUSTOMER, REASON_PAYMENT_FAILED, REASON_COMMIT_FAILED)
# Decision.reason: take the reason from the incoming event (billing's failure code).
FROM_EVENT = object()


@dataclass(frozen=True)
class Decision:
    """What a trigger does to an order: its new status, the events to emit, its reason."""

    status: str
    emit: tuple
    reason: object = None  # a string, None (keep the current one) or FROM_EVENT
    # Allowed only within services.orders.cancellation_window seconds of the
    # order's confirmation (see check_customer_cancel).
    within_window: bool = False


def _same(statuses, decision):
    return {status: decision for status in statuses}


# trigger -> {current status: Decision}. A status not listed means "ignore".
RULES = {
    STOCK_RESERVED: {PENDING: Decision(RESERVED, ("payment_requested",))},
    RESERVATION_REJECTED: {
        PENDING: Decision(REJECTED, ("order_rejected",), REASON_OUT_OF_STOCK),
    },
    PAYMENT_SUCCEEDED: {RESERVED: Decision(PAID, ("order_paid",))},
    PAYMENT_FAILED_EVENT: {
        RESERVED: Decision(PAYMENT_FAILED, ("order_payment_failed",), FROM_EVENT),
    },
    RESERVATION_RELEASED: {
        PAYMENT_FAILED: Decision(CANCELLED, ("order_cancelled",), REASON_PAYMENT_FAILED),
    },
    RESERVATION_COMMITTED: {PAID: Decision(CONFIRMED, ("order_confirmed",))},
    RESERVATION_COMMIT_FAILED: {
        PAID: Decision(CANCELLED, ("order_cancelled",), REASON_COMMIT_FAILED),
    },
    RESERVATION_EXPIRED: _same(
        (PENDING, RESERVED),
        Decision(EXPIRED, ("order_expired",), REASON_RESERVATION_EXPIRED),
    ),
    CUSTOMER_CANCEL: {
        **_same(
            (PENDING, RESERVED, PAID), Decision(CANCELLED, ("order_cancelled",), REASON_CUSTOMER)
        ),
        # Cancelling a confirmed order refunds it in full: the customer may do
        # so only for a while; afterwards a refund is an administrator's action.
        CONFIRMED: Decision(CANCELLED, ("order_cancelled",), REASON_CUSTOMER, within_window=True),
    },
    DEADLINE: {
        **_same((PENDING, RESERVED, PAID), Decision(EXPIRED, ("order_expired",), REASON_DEADLINE)),
        PAYMENT_FAILED: Decision(CANCELLED, ("order_cancelled",), REASON_PAYMENT_FAILED),
    },
}

CANCELLABLE = frozenset(RULES[CUSTOMER_CANCEL])


def ends_saga(previous, status):
    """Whether entering ``status`` from ``previous`` ends the order's saga: its
    first terminal status (a confirmed order cancelled later ended it already)."""
    return previous not in TERMINAL and status in TERMINAL


def decide(status, trigger):
    """The Decision for ``trigger`` on an order in ``status``, or None: ignore it."""
    if status not in TRANSITIONS:
        raise ValueError(f"unknown status {status!r}")
    if trigger not in RULES:
        raise ValueError(f"unknown trigger {trigger!r}")
    return RULES[trigger].get(status)


def confirmed_at(history):
    """When the order was confirmed, from its history (oldest first); None if never.

    The first confirmed entry: later ones with that status record events that
    were ignored while confirmed, and must not move the window."""
    return next((entry.at for entry in history if entry.status == CONFIRMED), None)


def check_customer_cancel(status, confirmed, now, window):
    """Refuse a customer's cancel of an order in ``status``: ``Conflict`` when the
    status allows none, ``CancellationWindowClosed`` when it allows one only within
    ``window`` seconds of the confirmation (``confirmed``, a datetime) and that passed."""
    decision = decide(status, CUSTOMER_CANCEL)
    if decision is None:
        raise Conflict(f"an order that is {status} cannot be cancelled", {"status": status})
    if not decision.within_window:
        return
    closes_at = None if confirmed is None else confirmed + datetime.timedelta(seconds=window)
    if closes_at is None or now >= closes_at:
        details = {"status": status, "cancellation_window": str(window)}
        if closes_at is not None:
            details["closed_at"] = isoformat_utc(closes_at)
        raise CancellationWindowClosed(
            f"a confirmed order can be cancelled within {window} seconds of its "
            "confirmation; ask support for a refund",
            details,
        )


def releases_token(status, token):
    """Whether an order in ``status`` that stores ``token`` gives it to billing."""
    return status == RESERVED and token is not None


def trigger_of(source_service, event_type):
    return f"{source_service}.{event_type}"


def ignored_reason(trigger, status):
    """The history note for an event that does not apply in ``status``."""
    return f"ignored {trigger} in status {status}"


# --- what a decision writes and emits ----------------------------------------


@dataclass(frozen=True)
class OrderFacts:
    """What the status machine needs to know about one order."""

    id: str
    user_id: str
    status: str
    items: list  # [LINE]
    total: dict  # Money
    payment_id: str | None = None
    reason: str | None = None
    deadline_at: str | None = None  # ISO-8601 UTC


@dataclass(frozen=True)
class Outcome:
    """The order's new column values and the events to dispatch, in order."""

    status: str
    reason: str | None
    payment_id: str | None
    clear_token: bool
    events: list  # [(event name, payload)]
    note: str | None  # the history entry's reason
    # What inventory could not reserve ([SHORTAGE]) when the order is rejected;
    # None: the order's stored shortages stay as they are.
    shortages: list | None = None


def _text(value, limit=500):
    return value[:limit] if isinstance(value, str) and value else None


def _payment_id(data):
    value = data.get("payment_id")
    return value if isinstance(value, str) and value else None


def advance(order, trigger, data=None):
    """The Outcome of ``trigger`` (with its event ``data``) for ``order``, or None: ignore."""
    decision = decide(order.status, trigger)
    if decision is None:
        return None
    data = data or {}
    payment_id = order.payment_id
    if trigger in (PAYMENT_SUCCEEDED, PAYMENT_FAILED_EVENT):
        payment_id = _payment_id(data) or payment_id
    if decision.reason is FROM_EVENT:
        reason = _text(data.get("code"), 100) or REASON_PAYMENT_FAILED
    elif decision.reason is None:
        reason = order.reason
    else:
        reason = decision.reason
    after = OrderFacts(
        id=order.id,
        user_id=order.user_id,
        status=decision.status,
        items=order.items,
        total=order.total,
        payment_id=payment_id,
        reason=reason,
        deadline_at=order.deadline_at,
    )
    events = [(name, event_payload(name, after, order.status, data)) for name in decision.emit]
    shortages = _shortages(data) if trigger == RESERVATION_REJECTED else None
    note = reason if decision.reason is not None else None
    if shortages:
        note = f"{note}: {shortage_text(shortages)}"
    return Outcome(
        status=decision.status,
        reason=reason,
        payment_id=payment_id,
        # Billing reads the token while the order is reserved; once the order
        # leaves HOLDS_TOKEN (billing answered, or the order closed) it is dropped.
        clear_token=decision.status not in HOLDS_TOKEN,
        events=events,
        note=note,
        shortages=shortages,
    )


def shortage_text(shortages):
    """``MUG-1: 2 requested, 1 available; ...``: the history note of a rejection."""
    return "; ".join(
        f"{s['sku']}: {s['requested']} requested, {s['available']} available" for s in shortages
    )


def _shortages(data):
    shortages = data.get("shortages")
    if not isinstance(shortages, list):
        return []
    return [
        {"sku": s["sku"], "requested": s["requested"], "available": s["available"]}
        for s in shortages
        if isinstance(s, dict) and {"sku", "requested", "available"} <= s.keys()
    ]


def event_payload(name, order, previous_status, data=None):
    """The payload (``data``) of the orders event ``name`` about ``order`` (after the change)."""
    data = data or {}
    base = {"order_id": order.id, "user_id": order.user_id}
    if name == "payment_requested":
        return {
            **base,
            "amount": order.total,
            "items": order.items,
            # Billing charges nothing after this: by then the order is expiring.
            **({"deadline_at": order.deadline_at} if order.deadline_at else {}),
        }
    if name == "order_paid":
        return {**base, "payment_id": order.payment_id}
    if name == "order_confirmed":
        return {
            **base,
            "items": order.items,
            "total": order.total,
            "payment_id": order.payment_id,
        }
    if name == "order_rejected":
        return {**base, "reason": order.reason, "shortages": _shortages(data)}
    if name == "order_payment_failed":
        reason = _text(data.get("reason")) or order.reason
        return {**base, "payment_id": order.payment_id, "reason": reason}
    if name == "order_cancelled":
        return {**base, "reason": order.reason, "previous_status": previous_status}
    if name == "order_expired":
        return {**base, "previous_status": previous_status}
    raise ValueError(f"no payload rule for {name!r}")


def created_payload(order, deadline_at):
    return {
        "order_id": order.id,
        "user_id": order.user_id,
        "items": order.items,
        "total": order.total,
        "deadline_at": isoformat_utc(deadline_at),
    }


# --- creating an order -------------------------------------------------------

MAX_AMOUNT = values.MAX_AMOUNT  # minor units, as for catalog prices: also the largest order total
TOKEN_MAX = 200
CURRENCY_PATTERN = values.CURRENCY_PATTERN


def check_limits(payload, max_lines, max_quantity):
    """Configured bounds and duplicate products of a schema-valid ``ORDER_CREATE``."""
    details = {}
    items = payload["items"]
    if len(items) > max_lines:
        details["items"] = f"must have at most {max_lines} lines"
    first_seen = {}
    for index, item in enumerate(items):
        if item["quantity"] > max_quantity:
            details[f"items.{index}.quantity"] = f"must be <= {max_quantity}"
        product_id = item["product_id"]
        if product_id in first_seen:
            details[f"items.{index}.product_id"] = (
                f"repeats items.{first_seen[product_id]}.product_id: "
                "one line per product, with its quantity"
            )
        else:
            first_seen[product_id] = index
    if details:
        raise ValidationError("invalid order", details)


def canonical_request(payload):
    """The payload in one form: whole-number quantities, nothing else."""
    return {
        "items": [
            {"product_id": item["product_id"], "quantity": whole(item["quantity"])}
            for item in payload["items"]
        ],
        "payment": {"token": payload["payment"]["token"]},
    }


def request_hash(payload):
    """sha256 (hex) of the canonical JSON of ``payload``: what idempotency compares."""
    text = json.dumps(
        canonical_request(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode()).hexdigest()


def price_lines(items, products):
    """The order's LINEs and total from catalog ``products`` ({product_id: PRODUCT or None}).

    A product that is unknown (None) or inactive is a ValidationError naming
    its item; so are lines in more than one currency and a total above MAX_AMOUNT.
    """
    details = {}
    lines = []
    for index, item in enumerate(items):
        product = products.get(item["product_id"])
        if product is None:
            details[f"items.{index}.product_id"] = "is not a known product"
            continue
        if not product.get("active"):
            details[f"items.{index}.product_id"] = "is not available"
            continue
        quantity = whole(item["quantity"])
        price = product["price"]
        lines.append(
            {
                "product_id": product["id"],
                "sku": product["sku"],
                "name": product["name"],
                "quantity": quantity,
                "unit_price": {"amount": price["amount"], "currency": price["currency"]},
                "line_total": {"amount": price["amount"] * quantity, "currency": price["currency"]},
            }
        )
    if details:
        raise ValidationError("invalid order", details)
    currencies = sorted({line["unit_price"]["currency"] for line in lines})
    if len(currencies) > 1:
        raise ValidationError(
            "invalid order",
            {"items": f"must all be priced in one currency, found {', '.join(currencies)}"},
        )
    amount = sum(line["line_total"]["amount"] for line in lines)
    if amount > MAX_AMOUNT:
        raise ValidationError("invalid order", {"items": f"total must be <= {MAX_AMOUNT}"})
    return lines, {"amount": amount, "currency": currencies[0]}


def new_order(user_id, payload, idempotency_key, lines, total, now, saga_timeout):
    """Column values of a new order (status pending)."""
    return {
        "id": uuid.uuid4(),
        "user_id": uuid.UUID(user_id),
        "status": PENDING,
        "total_amount": total["amount"],
        "currency": total["currency"],
        "payment_token": payload["payment"]["token"],
        "payment_id": None,
        "reason": None,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash(payload),
        "deadline_at": now + datetime.timedelta(seconds=saga_timeout),
        "created_at": now,
        "updated_at": now,
    }


def new_lines(lines):
    """order_lines column values (without order_id) of priced LINEs."""
    return [
        {
            "line_no": number,
            "product_id": uuid.UUID(line["product_id"]),
            "sku": line["sku"],
            "name": line["name"],
            "quantity": line["quantity"],
            "unit_price_amount": line["unit_price"]["amount"],
            "currency": line["unit_price"]["currency"],
        }
        for number, line in enumerate(lines, start=1)
    ]


# --- views -------------------------------------------------------------------


def line_view(row):
    unit = row.unit_price_amount
    return {
        "product_id": str(row.product_id),
        "sku": row.sku,
        "name": row.name,
        "quantity": row.quantity,
        "unit_price": {"amount": unit, "currency": row.currency},
        "line_total": {"amount": unit * row.quantity, "currency": row.currency},
    }


def facts(order, lines):
    """The OrderFacts of a stored order and its lines (in line_no order)."""
    return OrderFacts(
        id=str(order.id),
        user_id=str(order.user_id),
        status=order.status,
        items=[line_view(line) for line in lines],
        total={"amount": order.total_amount, "currency": order.currency},
        payment_id=order.payment_id,
        reason=order.reason,
        deadline_at=isoformat_utc(order.deadline_at),
    )


def shortages_view(shortages, lines):
    """The order's stored shortages, each with the name of its line: what the
    customer asked for and what was available when the order was rejected."""
    names = {line.sku: line.name for line in lines}
    return [
        {
            "sku": s["sku"],
            "name": names.get(s["sku"], s["sku"]),
            "requested": s["requested"],
            "available": s["available"],
        }
        for s in shortages or ()
    ]


# --- what the customer reads of the history ------------------------------------
# The stored history has an entry per status change and per incoming event that
# did not apply (``ignored_reason``: a note for operators). The customer sees
# the status changes only, each with a short message in plain words; operators
# (ops:read) see every entry with its technical note as ``operator_history``.

STATUS_MESSAGES = {
    PENDING: "Order placed",
    RESERVED: "Stock reserved",
    PAID: "Payment received",
    CONFIRMED: "Order confirmed",
    REJECTED: "Not enough stock: the order could not be placed",
    PAYMENT_FAILED: "Payment failed: {cause}",
    CANCELLED: "Cancelled: {cause}",
    EXPIRED: "Expired: {cause}",
}
# billing.payment_failed codes (billing's contract), as a customer reads them.
PAYMENT_FAILURE_MESSAGES = {
    "card_declined": "your card was declined",
    "processing_error": "the payment could not be processed",
    "timeout": "the payment service did not answer in time",
}
PAYMENT_FAILURE_MESSAGE = "the payment did not go through"
CLOSE_MESSAGES = {
    REASON_CUSTOMER: "you cancelled the order",
    REASON_COMMIT_FAILED: "the items could not be set aside; your payment is refunded",
    REASON_DEADLINE: "the order could not be completed in time",
    REASON_RESERVATION_EXPIRED: "the order could not be completed in time",
    REASON_OUT_OF_STOCK: "not enough stock",
}
CLOSE_MESSAGE = "the order could not be completed"
# Closing an order that was paid refunds it (billing, on order_cancelled or
# order_expired); a commit failure's message says so already.
REFUNDED_NOTE = "; your payment is refunded"
_PAID_BEFORE = frozenset({PAID, CONFIRMED})
# billing.refund_issued is noted in the history (the order's status stays): its
# code is the payment's status after the refund.
REFUND_MESSAGES = {"refunded": "Refunded", "partially_refunded": "Partly refunded"}


def refund_note(data):
    """The history note of a ``billing.refund_issued`` (its ``data``): the code,
    then for operators the amount (minor units) and billing's reason."""
    code = (
        "partially_refunded" if data.get("payment_status") == "partially_refunded" else "refunded"
    )
    amount = data.get("amount") if isinstance(data.get("amount"), dict) else {}
    reason = _text(data.get("reason"), 200) or "no reason given"
    return f"{code}: {amount.get('amount')} {amount.get('currency')} ({reason})"


def reason_code(note):
    """The machine-readable reason of a status change's history note: the part
    before the first ``:`` (a rejection's note goes on with its shortages)."""
    if not isinstance(note, str) or not note:
        return None
    return note.partition(":")[0].strip() or None


def _cause(status, code, payment_code):
    """Why the order went to ``status`` (with reason ``code``), in plain words;
    ``payment_code``: the code of the payment failure before it, if any."""
    if status == PAYMENT_FAILED or (status == CANCELLED and code == REASON_PAYMENT_FAILED):
        return PAYMENT_FAILURE_MESSAGES.get(payment_code or code, PAYMENT_FAILURE_MESSAGE)
    return CLOSE_MESSAGES.get(code, CLOSE_MESSAGE)


def customer_history(history):
    """The history a customer sees, oldest first: one entry per status change
    (the first one placed the order) and per refund, ``{"status", "at", "reason"
    (its code, or None), "message"}``. The other entries, which keep the status,
    noted an event that did not apply: for operators only."""
    entries, payment_code, previous = [], None, None
    for entry in history:
        code = reason_code(entry.reason)
        if entry.status == previous:
            if code in REFUND_MESSAGES:
                entries.append(
                    {
                        "status": entry.status,
                        "at": isoformat_utc(entry.at),
                        "reason": code,
                        "message": REFUND_MESSAGES[code],
                    }
                )
            continue
        if entry.status == PAYMENT_FAILED:
            payment_code = code
        message = STATUS_MESSAGES.get(entry.status, entry.status)
        if "{cause}" in message:
            message = message.format(cause=_cause(entry.status, code, payment_code))
        closed = entry.status in (CANCELLED, EXPIRED)
        if closed and previous in _PAID_BEFORE and code != REASON_COMMIT_FAILED:
            message += REFUNDED_NOTE
        previous = entry.status
        entries.append(
            {
                "status": entry.status,
                "at": isoformat_utc(entry.at),
                "reason": code,
                "message": message,
            }
        )
    return entries


def cancellation_reason(status, history):
    """Why a cancelled order was cancelled, for the customer ("Your card was
    declined"); None for an order that is not cancelled."""
    if status != CANCELLED:
        return None
    changes = [e for e in customer_history(history) if e["reason"] not in REFUND_MESSAGES]
    last = changes[-1:]
    if not last or last[0]["status"] != CANCELLED:
        return None
    cause = last[0]["message"].partition(": ")[2]
    return cause[:1].upper() + cause[1:]


def operator_history(history):
    """Every history entry with its note as stored, for operators (ops:read):
    ``{"status", "at", "note", "event_id"}``."""
    return [
        {
            "status": entry.status,
            "at": isoformat_utc(entry.at),
            "note": entry.reason,
            "event_id": str(event_id) if (event_id := getattr(entry, "event_id", None)) else None,
        }
        for entry in history
    ]


def order_view(order, lines, history, operator=False):
    """The public ORDER of a stored order, its lines and its history (oldest
    first): the customer's history, and with ``operator`` every entry with its
    note (``operator_history``)."""
    view = {
        "id": str(order.id),
        "user_id": str(order.user_id),
        "status": order.status,
        "items": [line_view(line) for line in lines],
        "total": {"amount": order.total_amount, "currency": order.currency},
        "payment_id": order.payment_id,
        "reason": order.reason,
        "shortages": shortages_view(order.shortages, lines),
        "created_at": isoformat_utc(order.created_at),
        "updated_at": isoformat_utc(order.updated_at),
        "deadline_at": isoformat_utc(order.deadline_at),
        "cancellation_reason": cancellation_reason(order.status, history),
        "history": customer_history(history),
    }
    if operator:
        view["operator_history"] = operator_history(history)
    return view


# --- list cursors ------------------------------------------------------------
# Newest first: a cursor is the (created_at, id) of the last order shown, as
# microseconds since the epoch and the UUID, with a short MAC so that an edited
# cursor is refused rather than paging from an odd place (services.chassis.cursors).

LIMIT_DEFAULT = 20
LIMIT_MAX = 100
CURSOR_MAX = cursors.CURSOR_MAX


def listing_cursors(key: bytes):
    """The cursors of ``list_orders``, signed with the service's cursor key
    (``services.orders.cursor_key``): ``.decode(cursor)`` gives
    ``(created_at, order_id)``, ``.page(rows, limit)`` the page and its ``next_cursor``."""
    return cursors.TimeIdCursor(key, "1")
