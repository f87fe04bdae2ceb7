"""Orders contracts (JSON Schema 2020-12): RPC arguments, results and event payloads.

Imported by the gateway to validate request bodies, so this module has no side
effects and imports nothing but the chassis schema helpers and the pure domain.
The configured bounds (``services.orders.max_lines`` and ``max_quantity``) are
checked by the service on top of these.
"""

from services.chassis.schemas import (
    IDEMPOTENCY_KEY_MESSAGE,
    IDEMPOTENCY_KEY_PATTERN,
    UUID_PATTERN,
    obj,
)
from services.orders import domain

_TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}
_UUID = {"type": "string", "pattern": UUID_PATTERN}
_UUID_OR_NULL = {"type": ["string", "null"], "pattern": UUID_PATTERN}
_TEXT = {"type": "string", "minLength": 1}

MONEY = obj(
    {
        "amount": {"type": "integer", "minimum": 0, "maximum": domain.MAX_AMOUNT},
        "currency": {
            "type": "string",
            "pattern": domain.CURRENCY_PATTERN,
            "x-message": "must be a three-letter upper-case ISO 4217 code",
        },
    },
    required=("amount", "currency"),
)
STATUS = {"enum": list(domain.STATUSES)}

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
SHORTAGE = obj(
    {
        "sku": {"type": "string"},
        "requested": {"type": "integer"},
        "available": {"type": "integer"},
    },
    required=("sku", "requested", "available"),
)

# In the order view: a line inventory could not reserve, named, with what was available.
SHORTAGE_VIEW = obj(
    {
        "sku": {"type": "string"},
        "name": {"type": "string"},
        "requested": {"type": "integer"},
        "available": {"type": "integer"},
    },
    required=("sku", "name", "requested", "available"),
)

# --- RPC ---------------------------------------------------------------------

PAYMENT_TOKEN = {"type": "string", "minLength": 1, "maxLength": domain.TOKEN_MAX}

# create_order's payload (the request body). Duplicate product ids are refused
# by the service; at most max_lines items of at most max_quantity each.
ORDER_CREATE = obj(
    {
        "items": {
            "type": "array",
            "minItems": 1,
            "items": obj(
                {"product_id": _UUID, "quantity": {"type": "integer", "minimum": 1}},
                required=("product_id", "quantity"),
            ),
        },
        "payment": obj({"token": PAYMENT_TOKEN}, required=("token",)),
    },
    required=("items", "payment"),
)

IDEMPOTENCY_KEY = {
    "type": "string",
    "pattern": IDEMPOTENCY_KEY_PATTERN,
    "x-message": IDEMPOTENCY_KEY_MESSAGE,
}

# create_order's other arguments (the caller's identity and the Idempotency-Key header).
CREATE_ARGS = obj(
    {"user_id": _UUID, "idempotency_key": IDEMPOTENCY_KEY},
    required=("user_id", "idempotency_key"),
)

# get_payment_token's argument, and its answer (billing's only way to the token).
ORDER_REF_ARGS = obj({"order_id": _UUID}, required=("order_id",))
PAYMENT_TOKEN_RESULT = obj({"payment_token": PAYMENT_TOKEN}, required=("payment_token",))

# get_order's caller (null: any owner, for staff), whether to add the operator
# history (ops:read), and cancel_order's caller (the owner).
OWNER_ARGS = obj({"user_id": _UUID_OR_NULL, "operator": {"type": "boolean"}}, required=("user_id",))
CANCEL_ARGS = obj({"user_id": _UUID}, required=("user_id",))

# list_orders arguments as they arrive from an HTTP query string (limit already
# an int); absent parameters are left out.
LIST_QUERY = obj(
    {
        "user_id": _UUID,
        "limit": {"type": "integer", "minimum": 1, "maximum": domain.LIMIT_MAX},
        "cursor": {"type": "string", "minLength": 1, "maxLength": domain.CURSOR_MAX},
        "status": STATUS,
    },
    required=("user_id",),
)

HISTORY_ENTRY = obj(
    {
        "status": STATUS,
        "at": _TIMESTAMP,
        "reason": {
            "type": ["string", "null"],
            "description": "Machine-readable: customer, out_of_stock, card_declined...",
        },
        "message": {"type": "string", "description": "For the customer: Payment received..."},
    },
    required=("status", "at", "reason", "message"),
)
OPERATOR_HISTORY_ENTRY = obj(
    {
        "status": STATUS,
        "at": _TIMESTAMP,
        "note": {
            "type": ["string", "null"],
            "description": "As recorded: the reason of a change, or why an event was ignored",
        },
        "event_id": {"type": ["string", "null"], "description": "The event that led to it"},
    },
    required=("status", "at", "note", "event_id"),
)

ORDER = obj(
    {
        "id": _UUID,
        "user_id": _UUID,
        "status": STATUS,
        "items": {"type": "array", "items": LINE, "minItems": 1},
        "total": MONEY,
        "payment_id": {"type": ["string", "null"]},
        "reason": {"type": ["string", "null"]},
        # Empty unless the order was rejected for want of stock (reason out_of_stock).
        "shortages": {"type": "array", "items": SHORTAGE_VIEW},
        "created_at": _TIMESTAMP,
        "updated_at": _TIMESTAMP,
        "deadline_at": _TIMESTAMP,
        # Set when the order is cancelled: why, in words for the customer
        # ("Your card was declined"); ``reason`` keeps the machine-readable code.
        "cancellation_reason": {"type": ["string", "null"]},
        # What the customer sees: one entry per status change, oldest first.
        "history": {"type": "array", "items": HISTORY_ENTRY},
        # Only for callers with ops:read (get_order with operator=True): every
        # entry as stored, events that did not apply included, with its note.
        "operator_history": {"type": "array", "items": OPERATOR_HISTORY_ENTRY},
    },
    required=(
        "id",
        "user_id",
        "status",
        "items",
        "total",
        "payment_id",
        "reason",
        "shortages",
        "created_at",
        "updated_at",
        "deadline_at",
        "cancellation_reason",
        "history",
    ),
)

CREATE_RESULT = obj({"order": ORDER, "created": {"type": "boolean"}}, required=("order", "created"))

ORDER_PAGE = obj(
    {"items": {"type": "array", "items": ORDER}, "next_cursor": {"type": ["string", "null"]}},
    required=("items", "next_cursor"),
)

# --- events (orders.<name>) --------------------------------------------------

_IDS = {"order_id": _UUID, "user_id": _UUID}
_ITEMS = {"type": "array", "items": LINE, "minItems": 1}


def _event(summary, properties, required):
    return {
        "version": 1,
        "summary": summary,
        "payload": obj({**_IDS, **properties}, required=("order_id", "user_id", *required)),
    }


# RPC methods a caller may send again after a timeout or a transient failure
# (services/chassis/service_client.py retries only these): reads, which change
# nothing. Any other method may have run when its caller gave up waiting.
IDEMPOTENT_RPC = frozenset({"get_order", "get_payment_token", "health", "list_orders"})

EVENTS = {
    "order_created": _event(
        "An order was placed (pending): inventory reserves its lines.",
        {"items": _ITEMS, "total": MONEY, "deadline_at": _TIMESTAMP},
        ("items", "total", "deadline_at"),
    ),
    # Version 2: the payment token left the event (version 1 carried it); billing
    # reads it from orders over RPC (get_payment_token), so no event, outbox row,
    # dead letter or outside consumer ever holds it.
    "payment_requested": {
        **_event(
            "Stock is reserved: billing charges the amount, with the payment token it "
            "gets from orders.get_payment_token, unless the order's deadline has passed.",
            {"amount": MONEY, "items": _ITEMS, "deadline_at": _TIMESTAMP},
            ("amount", "items"),
        ),
        "version": 2,
    },
    "order_paid": _event(
        "The payment succeeded: inventory commits the reservation.",
        {"payment_id": _TEXT},
        ("payment_id",),
    ),
    "order_confirmed": _event(
        "Stock committed and payment taken: the order is confirmed.",
        {"items": _ITEMS, "total": MONEY, "payment_id": _TEXT},
        ("items", "total", "payment_id"),
    ),
    "order_rejected": _event(
        "Stock could not be reserved: the order is rejected.",
        {"reason": _TEXT, "shortages": {"type": "array", "items": SHORTAGE}},
        ("reason", "shortages"),
    ),
    "order_payment_failed": _event(
        "The payment failed: inventory releases the reservation.",
        {"payment_id": {"type": ["string", "null"]}, "reason": _TEXT},
        ("payment_id", "reason"),
    ),
    "order_cancelled": _event(
        "The order was cancelled: stock is released or restocked, the payment refunded.",
        {
            "reason": {"enum": list(domain.CANCEL_REASONS)},
            "previous_status": STATUS,
        },
        ("reason", "previous_status"),
    ),
    "order_expired": _event(
        "The saga missed its deadline: stock is released, any payment refunded.",
        {"previous_status": STATUS},
        ("previous_status",),
    ),
}

__all__ = [
    "MONEY",
    "LINE",
    "SHORTAGE",
    "ORDER_CREATE",
    "CREATE_ARGS",
    "OWNER_ARGS",
    "CANCEL_ARGS",
    "LIST_QUERY",
    "ORDER_REF_ARGS",
    "PAYMENT_TOKEN_RESULT",
    "ORDER",
    "CREATE_RESULT",
    "ORDER_PAGE",
    "EVENTS",
]
