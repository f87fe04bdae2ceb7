"""Inventory rules with no I/O: allocation, stock changes, reservations and views.

Nothing here touches Nameko or a database session, so every rule is
unit-tested without brokers. The service locks rows and stores what these
functions decide.
"""

import datetime
import hashlib
import json
import uuid
from dataclasses import dataclass

from services.chassis.errors import Conflict, ValidationError
from services.chassis.values import isoformat_utc, whole

WAREHOUSE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
WAREHOUSE_MESSAGE = (
    "must be 1-32 characters of a-z, 0-9 and '-' (lower case), not starting with '-'"
)
# Client-chosen id of a warehouse sync (an idempotency key): printable ASCII, no spaces.
SYNC_ID_PATTERN = r"^[\x21-\x7e]{1,100}$"
SYNC_ID_MESSAGE = "must be 1-100 printable ASCII characters without spaces"
MAX_ON_HAND = 10**9
MAX_SYNC_LEVELS = 1000
REASON_MAX = 200

ACTIVE = "active"
COMMITTED = "committed"
RELEASED = "released"
EXPIRED = "expired"
STATUSES = (ACTIVE, COMMITTED, RELEASED, EXPIRED)

# Why stock changed (stock_changed.reason).
SET, ADJUST, SYNC = "set", "adjust", "sync"

# Why a reservation was released (reservation_released.reason): the order event.
RELEASE_REASONS = {
    "order_payment_failed": "order_payment_failed",
    "order_cancelled": "order_cancelled",
    "order_expired": "order_expired",
}

# What releasing a reservation in each status does to its stock rows.
RESTORE_RESERVED = "restore_reserved"  # active: reserved -= q
RESTOCK = "restock"  # committed: the stock left on_hand, it comes back: on_hand += q

EXPIRY_BATCH = 100


# --- reservations --------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    """The outcome of allocating an order: all its lines, or its shortages."""

    lines: tuple  # ((sku, warehouse, quantity), ...) in (sku, warehouse) order
    shortages: tuple  # ({"sku", "requested", "available"}, ...) in sku order

    @property
    def ok(self):
        return not self.shortages


def requested_quantities(items):
    """``{sku: quantity}`` of an order's items, quantities of repeated SKUs summed."""
    requested = {}
    for item in items:
        requested[item["sku"]] = requested.get(item["sku"], 0) + whole(item["quantity"])
    return dict(sorted(requested.items()))


def warehouse_preference(warehouses, default_warehouse):
    """The order in which warehouses give stock: the default first, then by name."""
    return sorted(set(warehouses), key=lambda name: (name != default_warehouse, name))


def allocate(requested, available, default_warehouse):
    """Allocate ``requested`` (``{sku: quantity}``) from ``available``
    (``{(sku, warehouse): quantity}``): every line or none.

    Each SKU is taken from the default warehouse first, then from the others
    by name, split over several warehouses when one does not hold enough.
    """
    by_sku = {}
    for (sku, warehouse), quantity in available.items():
        by_sku.setdefault(sku, {})[warehouse] = quantity
    lines, shortages = [], []
    for sku in sorted(requested):
        wanted = requested[sku]
        stock = by_sku.get(sku, {})
        total = sum(max(quantity, 0) for quantity in stock.values())
        if total < wanted:
            shortages.append({"sku": sku, "requested": wanted, "available": total})
            continue
        remaining = wanted
        for warehouse in warehouse_preference(stock, default_warehouse):
            take = min(remaining, max(stock[warehouse], 0))
            if take:
                lines.append((sku, warehouse, take))
                remaining -= take
            if not remaining:
                break
    if shortages:
        return Allocation((), tuple(shortages))
    return Allocation(tuple(sorted(lines)), ())


def lock_order(keys):
    """``(sku, warehouse)`` keys in the one order every transaction locks stock rows in."""
    return sorted(set(keys))


def reservation_expiry(now, ttl):
    return now + datetime.timedelta(seconds=ttl)


def release_effect(status):
    """What releasing a reservation in ``status`` does to stock (None: nothing)."""
    return {ACTIVE: RESTORE_RESERVED, COMMITTED: RESTOCK}.get(status)


def commit_failure_reason(status):
    """Why an order's reservation (in ``status``, None if none) cannot be committed."""
    if status is None:
        return "no reservation for this order"
    return f"reservation is {status}"


def new_reservation(order_id, now, ttl):
    """Column values of an active reservation of ``order_id`` made at ``now``."""
    return {
        "id": uuid.uuid4(),
        "order_id": uuid.UUID(order_id),
        "status": ACTIVE,
        "expires_at": reservation_expiry(now, ttl),
        "created_at": now,
        "updated_at": now,
    }


def tombstone(order_id, now):
    """A released reservation with no lines: a late ``order_created`` reserves nothing."""
    return {
        "id": uuid.uuid4(),
        "order_id": uuid.UUID(order_id),
        "status": RELEASED,
        "expires_at": None,
        "created_at": now,
        "updated_at": now,
    }


# --- stock changes ---------------------------------------------------------------


def set_on_hand(on_hand, reserved, sku, warehouse):
    """The new on_hand of a set (or a sync line); Conflict below what is reserved."""
    if on_hand < reserved:
        raise Conflict(
            "on_hand would be below the reserved quantity",
            {"on_hand": f"must be >= {reserved} (reserved) for {sku} in {warehouse}"},
        )
    return on_hand


def adjusted_on_hand(on_hand, reserved, delta):
    """on_hand after adding ``delta``; Conflict below 0 or below what is reserved."""
    if delta == 0:
        raise ValidationError("invalid stock adjustment", {"delta": "must not be 0"})
    new = on_hand + delta
    if new < 0:
        raise Conflict("stock would go below 0", {"delta": f"must be >= {-on_hand}"})
    if new < reserved:
        raise Conflict(
            "stock would go below the reserved quantity",
            {"delta": f"must be >= {reserved - on_hand} ({reserved} reserved)"},
        )
    if new > MAX_ON_HAND:
        raise Conflict("stock would exceed the maximum", {"delta": f"must be <= {MAX_ON_HAND}"})
    return new


def sync_levels(levels):
    """``{sku: on_hand}`` of a validated sync body; ValidationError on a repeated SKU."""
    result = {}
    for index, level in enumerate(levels):
        if level["sku"] in result:
            raise ValidationError(
                "invalid warehouse sync", {f"levels.{index}.sku": "appears more than once"}
            )
        result[level["sku"]] = whole(level["on_hand"])
    return dict(sorted(result.items()))


def sync_shortfalls(levels, reserved):
    """Details of the sync lines that would put on_hand below ``reserved`` (``{sku: n}``)."""
    return {
        f"levels.{index}.on_hand": f"must be >= {reserved[level['sku']]} (reserved)"
        for index, level in enumerate(levels)
        if whole(level["on_hand"]) < reserved.get(level["sku"], 0)
    }


def sync_body_hash(warehouse, levels):
    """A digest of what a sync asks for; the order of ``levels`` does not matter."""
    body = {"warehouse": warehouse, "levels": sorted(sync_levels(levels).items())}
    return hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()


# --- views and events ------------------------------------------------------------


def _quantities(on_hand, reserved):
    return {"on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved}


def stock_view(sku, rows):
    """The ``STOCK`` contract of ``sku`` from its stock rows (warehouse, on_hand, reserved)."""
    warehouses = [
        {"warehouse": row.warehouse, **_quantities(row.on_hand, row.reserved)}
        for row in sorted(rows, key=lambda row: row.warehouse)
    ]
    on_hand = sum(row.on_hand for row in rows)
    reserved = sum(row.reserved for row in rows)
    return {"sku": sku, "warehouses": warehouses, "total": _quantities(on_hand, reserved)}


def line_view(sku, warehouse, quantity):
    return {"sku": sku, "warehouse": warehouse, "quantity": quantity}


def reservation_view(reservation, lines):
    """The ``RESERVATION`` contract; a tombstone is a released reservation without lines."""
    expires_at = reservation.expires_at
    return {
        "reservation_id": str(reservation.id),
        "order_id": str(reservation.order_id),
        "status": reservation.status,
        "expires_at": isoformat_utc(expires_at) if expires_at is not None else None,
        "lines": [
            line_view(line.sku, line.warehouse, line.quantity)
            for line in sorted(lines, key=lambda line: (line.sku, line.warehouse))
        ],
    }


def stock_changed(row, reason):
    """The ``stock_changed`` payload of one stock row after a change."""
    return {
        "sku": row.sku,
        "warehouse": row.warehouse,
        **_quantities(row.on_hand, row.reserved),
        "reason": reason,
    }


def stock_reserved(order_id, reservation_id, expires_at, lines):
    return {
        "order_id": order_id,
        "reservation_id": str(reservation_id),
        "expires_at": isoformat_utc(expires_at),
        "lines": [line_view(*line) for line in lines],
    }
