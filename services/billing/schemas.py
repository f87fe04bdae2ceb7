"""Billing contracts (JSON Schema 2020-12): RPC arguments, results and event payloads.

Imported by the gateway to validate request bodies, so this module has no side
effects and imports nothing but the chassis schema helpers and the pure domain.
"""

from services.billing import domain
from services.chassis.schemas import (
    IDEMPOTENCY_KEY_MESSAGE,
    IDEMPOTENCY_KEY_PATTERN,
    UUID_PATTERN,
    obj,
)

_TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}
_UUID = {"type": "string", "pattern": UUID_PATTERN}
_TEXT = {"type": "string", "minLength": 1}
_CURRENCY = {
    "type": "string",
    "pattern": domain.CURRENCY_PATTERN,
    "x-message": domain.CURRENCY_MESSAGE,
}

MONEY = obj(
    {
        "amount": {"type": "integer", "minimum": 0, "maximum": domain.MAX_AMOUNT},
        "currency": _CURRENCY,
    },
    required=("amount", "currency"),
)
# An amount to move (a refund, a disputed amount): more than nothing.
POSITIVE_MONEY = obj(
    {
        "amount": {"type": "integer", "minimum": 1, "maximum": domain.MAX_AMOUNT},
        "currency": _CURRENCY,
    },
    required=("amount", "currency"),
)
REASON = {"type": "string", "minLength": 1, "maxLength": domain.REASON_MAX}

# An order line as orders sends it (payment_requested.items) and receipts keep it.
LINE = obj(
    {
        "product_id": _UUID,
        "sku": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "quantity": {"type": "integer", "minimum": 1},
        "unit_price": MONEY,
        "line_total": MONEY,
    },
    required=("product_id", "sku", "name", "quantity", "unit_price", "line_total"),
)
_ITEMS = {"type": "array", "items": LINE}

# --- RPC ---------------------------------------------------------------------

# refund_payment(payment_id, amount, reason, idempotency_key): the body part.
# No amount refunds all that remains.
REFUND_REQUEST = obj({"amount": POSITIVE_MONEY, "reason": REASON})
# open_dispute(payment_id, reason, amount): no amount disputes all that is not
# refunded (nor already held by a lost dispute).
DISPUTE_REQUEST = obj({"reason": REASON, "amount": POSITIVE_MONEY}, required=("reason",))
# resolve_dispute(payment_id, dispute_id, outcome).
DISPUTE_RESOLUTION = obj({"outcome": {"enum": list(domain.OUTCOMES)}}, required=("outcome",))
# refund_payment's idempotency_key: the gateway's Idempotency-Key header.
IDEMPOTENCY_KEY = {
    "type": "string",
    "pattern": IDEMPOTENCY_KEY_PATTERN,
    "x-message": IDEMPOTENCY_KEY_MESSAGE,
}
REFUND_KEY = obj({"idempotency_key": IDEMPOTENCY_KEY})

REFUND = obj(
    {"id": _UUID, "amount": MONEY, "reason": _TEXT, "created_at": _TIMESTAMP},
    required=("id", "amount", "reason", "created_at"),
)
DISPUTE = obj(
    {
        "id": _UUID,
        "amount": MONEY,
        "reason": _TEXT,
        "status": {"enum": list(domain.DISPUTE_STATUSES)},
        "created_at": _TIMESTAMP,
        "resolved_at": {"anyOf": [_TIMESTAMP, {"type": "null"}]},
    },
    required=("id", "amount", "reason", "status", "created_at", "resolved_at"),
)
RECEIPT = obj(
    {
        "id": _UUID,
        "number": {"type": "string", "pattern": r"^R-\d{4}-\d{6,}$"},
        "issued_at": _TIMESTAMP,
        "amount": MONEY,
        "items": _ITEMS,
    },
    required=("id", "number", "issued_at", "amount", "items"),
)
FAILURE = obj(
    {"code": {"enum": list(domain.FAILURE_CODES)}, "reason": {"type": "string"}},
    required=("code", "reason"),
)
PAYMENT = obj(
    {
        "id": _UUID,
        "order_id": _UUID,
        "user_id": _UUID,
        "amount": MONEY,
        "status": {"enum": list(domain.STATUSES)},
        "refunded": MONEY,
        "failure": {"anyOf": [FAILURE, {"type": "null"}]},
        "attempts": {"type": "integer", "minimum": 0},
        "created_at": _TIMESTAMP,
        "updated_at": _TIMESTAMP,
        "refunds": {"type": "array", "items": REFUND},
        "disputes": {"type": "array", "items": DISPUTE},
        "receipt": {"anyOf": [RECEIPT, {"type": "null"}]},
    },
    required=(
        "id",
        "order_id",
        "user_id",
        "amount",
        "status",
        "refunded",
        "failure",
        "attempts",
        "created_at",
        "updated_at",
        "refunds",
        "disputes",
        "receipt",
    ),
)

# list_payments(limit, cursor, status): every payment (tombstones aside), newest first.
LIST_QUERY = obj(
    {
        "limit": {"type": "integer", "minimum": 1, "maximum": domain.LIMIT_MAX},
        "cursor": {"type": "string", "minLength": 1, "maxLength": domain.CURSOR_MAX},
        "status": {"enum": list(domain.STATUSES)},
    }
)
PAYMENT_PAGE = obj(
    {"items": {"type": "array", "items": PAYMENT}, "next_cursor": {"type": ["string", "null"]}},
    required=("items", "next_cursor"),
)

# --- events billing handles (orders.<name>) -------------------------------------
# What billing relies on; other fields are allowed, so orders can add to its events.

PAYMENT_REQUESTED = obj(
    {
        "order_id": _UUID,
        "user_id": _UUID,
        "amount": MONEY,
        "items": _ITEMS,
        "deadline_at": {"type": "string", "format": "date-time"},
    },
    # No payment token: billing reads it from orders.get_payment_token.
    required=("order_id", "user_id", "amount", "items"),
    additionalProperties=True,
)
ORDER_CLOSED = obj(
    {"order_id": _UUID, "user_id": _UUID},
    required=("order_id", "user_id"),
    additionalProperties=True,
)

# --- events billing emits (billing.<name>) --------------------------------------

_IDS = {"order_id": _UUID, "payment_id": _UUID, "user_id": _UUID}


def _event(summary, properties, required):
    return {
        "version": 1,
        "summary": summary,
        "payload": obj(
            {**_IDS, **properties}, required=("order_id", "payment_id", "user_id", *required)
        ),
    }


# RPC methods a caller may send again after a timeout or a transient failure
# (services/chassis/service_client.py retries only these): reads, which change
# nothing. Any other method may have run when its caller gave up waiting.
IDEMPOTENT_RPC = frozenset({"get_payment", "get_payment_for_order", "list_payments", "health"})

EVENTS = {
    "payment_succeeded": _event(
        "The order's amount was charged: orders marks it paid.",
        {"amount": MONEY},
        ("amount",),
    ),
    "payment_failed": _event(
        "The charge was declined, or failed on every attempt: orders marks the order.",
        {
            "amount": MONEY,
            "code": {"enum": list(domain.FAILURE_CODES)},
            "reason": _TEXT,
            "attempts": {"type": "integer", "minimum": 1},
        },
        ("amount", "code", "reason", "attempts"),
    ),
    "receipt_issued": _event(
        "A receipt for a successful payment (sent with payment_succeeded).",
        {
            "receipt_id": _UUID,
            "number": RECEIPT["properties"]["number"],
            "amount": MONEY,
            "issued_at": _TIMESTAMP,
            "items": _ITEMS,
        },
        ("receipt_id", "number", "amount", "issued_at", "items"),
    ),
    "refund_issued": _event(
        "Money went back to the customer: an administrator's refund or a closed order's.",
        {
            "refund_id": _UUID,
            "amount": POSITIVE_MONEY,
            "reason": _TEXT,
            "payment_status": {"enum": [domain.PARTIALLY_REFUNDED, domain.REFUNDED]},
        },
        ("refund_id", "amount", "reason", "payment_status"),
    ),
    "dispute_opened": _event(
        "The customer's bank disputes (part of) a payment.",
        {"dispute_id": _UUID, "amount": POSITIVE_MONEY, "reason": _TEXT},
        ("dispute_id", "amount", "reason"),
    ),
    "dispute_resolved": _event(
        "A dispute was won (the money stays) or lost (it went back to the customer).",
        {"dispute_id": _UUID, "amount": POSITIVE_MONEY, "outcome": {"enum": list(domain.OUTCOMES)}},
        ("dispute_id", "amount", "outcome"),
    ),
}

__all__ = [
    "MONEY",
    "POSITIVE_MONEY",
    "LINE",
    "REFUND_REQUEST",
    "DISPUTE_REQUEST",
    "DISPUTE_RESOLUTION",
    "IDEMPOTENCY_KEY",
    "REFUND_KEY",
    "REFUND",
    "DISPUTE",
    "RECEIPT",
    "PAYMENT",
    "LIST_QUERY",
    "PAYMENT_PAGE",
    "PAYMENT_REQUESTED",
    "ORDER_CLOSED",
    "EVENTS",
]
