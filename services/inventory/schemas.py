"""Inventory contracts (JSON Schema 2020-12): RPC arguments, results and event payloads.

Imported by the gateway to validate request bodies, so this module has no side
effects and imports nothing but the chassis schema helpers and the pure domain.
"""

from services.chassis.schemas import SKU_MESSAGE, SKU_PATTERN, UUID_PATTERN, obj
from services.inventory import domain

_TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}
_ID = {"type": "string", "pattern": UUID_PATTERN}
_COUNT = {"type": "integer", "minimum": 0}
_POSITIVE = {"type": "integer", "minimum": 1}

SKU = {"type": "string", "pattern": SKU_PATTERN, "x-message": SKU_MESSAGE}
WAREHOUSE = {
    "type": "string",
    "pattern": domain.WAREHOUSE_PATTERN,
    "x-message": domain.WAREHOUSE_MESSAGE,
}
ON_HAND = {"type": "integer", "minimum": 0, "maximum": domain.MAX_ON_HAND}
SYNC_ID = {"type": "string", "pattern": domain.SYNC_ID_PATTERN, "x-message": domain.SYNC_ID_MESSAGE}
REASON = {"type": "string", "minLength": 1, "maxLength": domain.REASON_MAX}

QUANTITIES = obj(
    {"on_hand": _COUNT, "reserved": _COUNT, "available": _COUNT},
    required=("on_hand", "reserved", "available"),
)

# get_stock (and set_stock, adjust_stock) result.
STOCK = obj(
    {
        "sku": SKU,
        "warehouses": {
            "type": "array",
            "items": obj(
                {"warehouse": WAREHOUSE, **QUANTITIES["properties"]},
                required=("warehouse", "on_hand", "reserved", "available"),
            ),
        },
        "total": QUANTITIES,
    },
    required=("sku", "warehouses", "total"),
)

# Request bodies (the SKU is in the gateway's path): set_stock, adjust_stock.
STOCK_SET = obj({"warehouse": WAREHOUSE, "on_hand": ON_HAND}, required=("warehouse", "on_hand"))
STOCK_ADJUST = obj(
    {
        "warehouse": WAREHOUSE,
        # Not 0: checked by the service (domain.adjusted_on_hand).
        "delta": {"type": "integer", "minimum": -domain.MAX_ON_HAND, "maximum": domain.MAX_ON_HAND},
        "reason": REASON,
    },
    required=("warehouse", "delta", "reason"),
)

# sync_warehouse arguments: the warehouse's counted on_hand per SKU. SKUs not
# listed keep their stock; the same sync_id again is a replay.
WAREHOUSE_SYNC = obj(
    {
        "sync_id": SYNC_ID,
        "warehouse": WAREHOUSE,
        "levels": {
            "type": "array",
            "minItems": 1,
            "maxItems": domain.MAX_SYNC_LEVELS,
            "items": obj({"sku": SKU, "on_hand": ON_HAND}, required=("sku", "on_hand")),
        },
    },
    required=("sync_id", "warehouse", "levels"),
)
SYNC_RESULT = obj(
    {
        "sync_id": SYNC_ID,
        "warehouse": WAREHOUSE,
        "applied": _COUNT,
        "replayed": {"type": "boolean"},
    },
    required=("sync_id", "warehouse", "applied", "replayed"),
)

# The RPC arguments as the service checks them (bodies plus the path's SKU).
SKU_ARGS = obj({"sku": SKU}, required=("sku",))
STOCK_SET_ARGS = obj(
    {"sku": SKU, **STOCK_SET["properties"]}, required=("sku", *STOCK_SET["required"])
)
STOCK_ADJUST_ARGS = obj(
    {"sku": SKU, **STOCK_ADJUST["properties"]}, required=("sku", *STOCK_ADJUST["required"])
)
ORDER_ARGS = obj({"order_id": _ID}, required=("order_id",))

LINE = obj(
    {"sku": SKU, "warehouse": WAREHOUSE, "quantity": _POSITIVE},
    required=("sku", "warehouse", "quantity"),
)
SHORTAGE = obj(
    {"sku": SKU, "requested": _POSITIVE, "available": _COUNT},
    required=("sku", "requested", "available"),
)

# get_reservation result. A tombstone (an order cancelled before it was
# reserved, or a rejected order) is a released reservation without lines and
# without expires_at.
RESERVATION = obj(
    {
        "reservation_id": _ID,
        "order_id": _ID,
        "status": {"enum": list(domain.STATUSES)},
        "expires_at": {"anyOf": [_TIMESTAMP, {"type": "null"}]},
        "lines": {"type": "array", "items": LINE},
    },
    required=("reservation_id", "order_id", "status", "expires_at", "lines"),
)

# --- events handled (owned by orders; open objects: only the fields used) ---------

ORDER_CREATED_DATA = {
    "type": "object",
    "required": ["order_id", "items"],
    "properties": {
        "order_id": _ID,
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sku", "quantity"],
                "properties": {"sku": SKU, "quantity": _POSITIVE},
            },
        },
    },
}
ORDER_REF_DATA = {"type": "object", "required": ["order_id"], "properties": {"order_id": _ID}}

# catalog.product_created (owned by catalog; only the SKU is used).
PRODUCT_CREATED_DATA = {
    "type": "object",
    "required": ["product"],
    "properties": {
        "product": {"type": "object", "required": ["sku"], "properties": {"sku": SKU}},
    },
}

# --- events emitted ------------------------------------------------------------------

# RPC methods a caller may send again after a timeout or a transient failure
# (services/chassis/service_client.py retries only these): reads, which change
# nothing. Any other method may have run when its caller gave up waiting.
IDEMPOTENT_RPC = frozenset({"get_reservation", "get_stock", "health"})

EVENTS = {
    "stock_reserved": {
        "version": 1,
        "summary": "Every line of an order is reserved until expires_at.",
        "payload": obj(
            {
                "order_id": _ID,
                "reservation_id": _ID,
                "expires_at": _TIMESTAMP,
                "lines": {"type": "array", "minItems": 1, "items": LINE},
            },
            required=("order_id", "reservation_id", "expires_at", "lines"),
        ),
    },
    "reservation_rejected": {
        "version": 1,
        "summary": "An order could not be reserved: nothing was, these SKUs are short.",
        "payload": obj(
            {"order_id": _ID, "shortages": {"type": "array", "minItems": 1, "items": SHORTAGE}},
            required=("order_id", "shortages"),
        ),
    },
    "reservation_committed": {
        "version": 1,
        "summary": "A paid order's reserved stock has left on_hand.",
        "payload": obj(
            {"order_id": _ID, "reservation_id": _ID}, required=("order_id", "reservation_id")
        ),
    },
    "reservation_commit_failed": {
        "version": 1,
        "summary": "A paid order has no active reservation (expired, released or none).",
        "payload": obj({"order_id": _ID, "reason": REASON}, required=("order_id", "reason")),
    },
    "reservation_released": {
        "version": 1,
        "summary": "An order holds no stock any more (reservation_id null: it never did).",
        "payload": obj(
            {
                "order_id": _ID,
                "reservation_id": {"anyOf": [_ID, {"type": "null"}]},
                "reason": {"enum": sorted(domain.RELEASE_REASONS.values())},
            },
            required=("order_id", "reservation_id", "reason"),
        ),
    },
    "reservation_expired": {
        "version": 1,
        "summary": "A reservation was not committed in time; its stock is available again.",
        "payload": obj(
            {"order_id": _ID, "reservation_id": _ID}, required=("order_id", "reservation_id")
        ),
    },
    "stock_changed": {
        "version": 1,
        "summary": "An administrator or a warehouse sync changed the stock of one SKU somewhere.",
        "payload": obj(
            {
                "sku": SKU,
                "warehouse": WAREHOUSE,
                **QUANTITIES["properties"],
                "reason": {"enum": [domain.SET, domain.ADJUST, domain.SYNC]},
            },
            required=("sku", "warehouse", "on_hand", "reserved", "available", "reason"),
        ),
    },
}

__all__ = [
    "STOCK",
    "STOCK_SET",
    "STOCK_ADJUST",
    "WAREHOUSE_SYNC",
    "SYNC_RESULT",
    "RESERVATION",
    "EVENTS",
]
