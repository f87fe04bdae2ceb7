"""The invariants, read from the services' own databases after the faults.

Each check returns ``Check(name, ok, detail)``; ``detail`` holds the evidence
(counts, and the first offending rows) for the report.
"""

from collections import Counter
from dataclasses import asdict, dataclass, field

from sqlalchemy import create_engine, text

from chaos.load import ACCEPTED, RETRYABLE
from services.chassis.config import database_url

TERMINAL = ("confirmed", "rejected", "cancelled", "expired")
# The order events notifications records a message for, by the order's state.
ORDER_NOTIFYING = (
    "order_confirmed",
    "order_payment_failed",
    "order_cancelled",
    "order_rejected",
    "order_expired",
)
BILLING_NOTIFYING = ("receipt_issued", "refund_issued")
# The event a terminal order must have emitted.
TERMINAL_EVENT = {
    "confirmed": "order_confirmed",
    "rejected": "order_rejected",
    "cancelled": "order_cancelled",
    "expired": "order_expired",
}
SHOWN = 10  # offending rows quoted in a check's detail


@dataclass
class Check:
    name: str
    ok: bool
    detail: dict = field(default_factory=dict)

    def as_dict(self):
        return asdict(self)


class Ledgers:
    """Read-only connections to the orders, inventory, billing and notifications databases."""

    def __init__(self, config):
        self.engines = {
            name: create_engine(database_url(config, name), pool_pre_ping=True)
            for name in ("orders", "inventory", "billing", "notifications")
        }

    def rows(self, database, sql, **params):
        with self.engines[database].connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]

    def order_states(self, order_ids):
        rows = self.rows(
            "orders",
            "SELECT id::text AS id, status, reason, created_at, updated_at FROM orders "
            "WHERE id::text = ANY(:ids)",
            ids=list(order_ids),
        )
        return {row["id"]: row for row in rows}

    def dispose(self):
        for engine in self.engines.values():
            engine.dispose()


def terminal_states(ledgers, orders, deadline_passed):
    """Every accepted order is in a terminal state (by the deadline)."""
    states = ledgers.order_states([o.order_id for o in orders])
    missing = [o.order_id for o in orders if o.order_id not in states]
    stuck = {oid: row["status"] for oid, row in states.items() if row["status"] not in TERMINAL}
    return Check(
        "every accepted order reached a terminal state within 60 s of the last recovery",
        not missing and not stuck,
        {
            "accepted": len(orders),
            "states": dict(Counter(row["status"] for row in states.values())),
            "unknown_to_orders": missing[:SHOWN],
            "not_terminal": dict(list(stuck.items())[:SHOWN]),
            "not_terminal_count": len(stuck),
            "checked_after_deadline": deadline_passed,
        },
    )


def no_double_charge(ledgers, orders):
    """At most one charge per order; a confirmed order has exactly one; a charge
    of an order that did not complete was refunded in full."""
    ids = [o.order_id for o in orders]
    charges = ledgers.rows(
        "billing",
        "SELECT p.order_id::text AS order_id, c.charge_id, c.amount, "
        "coalesce((SELECT sum(r.amount) FROM simulated_refunds r "
        "          WHERE r.charge_id = c.charge_id), 0) AS refunded "
        "FROM payments p JOIN simulated_charges c ON c.idempotency_key = p.id::text "
        "WHERE p.order_id::text = ANY(:ids)",
        ids=ids,
    )
    per_order = Counter(row["order_id"] for row in charges)
    states = ledgers.order_states(ids)
    twice = {oid: n for oid, n in per_order.items() if n > 1}
    confirmed_uncharged = [
        oid for oid, row in states.items() if row["status"] == "confirmed" and not per_order[oid]
    ]
    kept = [
        row["order_id"]
        for row in charges
        if states.get(row["order_id"], {}).get("status") in ("rejected", "cancelled", "expired")
        and row["refunded"] < row["amount"]
    ]
    return Check(
        "no double charge (billing: one charge per order at most, none kept for an "
        "order that did not complete)",
        not twice and not confirmed_uncharged and not kept,
        {
            "charges": len(charges),
            "orders_charged_twice": dict(list(twice.items())[:SHOWN]),
            "confirmed_without_charge": confirmed_uncharged[:SHOWN],
            "charged_not_completed_not_refunded": kept[:SHOWN],
        },
    )


def stock(ledgers, products, orders):
    """No oversell and stock conserved, per product and warehouse (inventory's
    database): initial on hand = on hand + sold (available + reserved + sold,
    available being on_hand - reserved); reserved = the lines of active
    reservations; sold = the committed lines = the confirmed orders' quantities."""
    skus = [p["sku"] for p in products]
    levels = ledgers.rows(
        "inventory",
        "SELECT s.sku, s.warehouse, s.on_hand, s.reserved, "
        "coalesce((SELECT sum(l.quantity) FROM reservation_lines l JOIN reservations r "
        "  ON r.id = l.reservation_id WHERE r.status = 'committed' "
        "  AND l.sku = s.sku AND l.warehouse = s.warehouse), 0) AS sold, "
        "coalesce((SELECT sum(l.quantity) FROM reservation_lines l JOIN reservations r "
        "  ON r.id = l.reservation_id WHERE r.status = 'active' "
        "  AND l.sku = s.sku AND l.warehouse = s.warehouse), 0) AS held "
        "FROM stock_levels s WHERE s.sku = ANY(:skus)",
        skus=skus,
    )
    confirmed = ledgers.rows(
        "orders",
        "SELECT l.sku, sum(l.quantity) AS quantity FROM order_lines l "
        "JOIN orders o ON o.id = l.order_id "
        "WHERE o.status = 'confirmed' AND o.id::text = ANY(:ids) GROUP BY l.sku",
        ids=[o.order_id for o in orders],
    )
    confirmed = {row["sku"]: int(row["quantity"]) for row in confirmed}
    initial = {p["sku"]: p["stock"] for p in products}
    oversold, unbalanced, table = [], [], []
    for row in levels:
        sku = row["sku"]
        available = row["on_hand"] - row["reserved"]
        entry = {
            "sku": sku,
            "warehouse": row["warehouse"],
            "initial": initial[sku],
            "on_hand": row["on_hand"],
            "available": available,
            "reserved": row["reserved"],
            "sold": int(row["sold"]),
            "active_reservation_lines": int(row["held"]),
            "confirmed_quantity": confirmed.get(sku, 0),
        }
        table.append(entry)
        if (
            entry["sold"] > initial[sku]
            or available < 0
            or entry["confirmed_quantity"] > initial[sku]
        ):
            oversold.append(entry)
        if (
            available + row["reserved"] + entry["sold"] != initial[sku]
            or row["reserved"] != entry["active_reservation_lines"]
            or entry["sold"] != entry["confirmed_quantity"]
        ):
            unbalanced.append(entry)
    return [
        Check("no oversell (inventory)", not oversold, {"oversold": oversold, "stock": table}),
        Check(
            "stock conserved (initial on hand = available + reserved + sold; reserved = "
            "active reservations; sold = confirmed orders)",
            not unbalanced and len(levels) == len(products),
            {"unbalanced": unbalanced, "rows": len(levels), "products": len(products)},
        ),
    ]


def notifications_recorded(ledgers, orders):
    """Every notifying event of the accepted orders (orders' and billing's outbox)
    has its notification row; every terminal order emitted its terminal event."""
    ids = [o.order_id for o in orders]
    events = []
    for database, types in (("orders", ORDER_NOTIFYING), ("billing", BILLING_NOTIFYING)):
        events += ledgers.rows(
            database,
            "SELECT event_id::text AS event_id, event_type, published_at IS NOT NULL AS published, "
            "envelope->'data'->>'order_id' AS order_id FROM outbox_events "
            "WHERE event_type = ANY(:types) AND envelope->'data'->>'order_id' = ANY(:ids)",
            types=list(types),
            ids=ids,
        )
    recorded = {
        row["event_id"]
        for row in ledgers.rows(
            "notifications",
            "SELECT DISTINCT event_id::text AS event_id FROM notifications "
            "WHERE event_id::text = ANY(:ids)",
            ids=[e["event_id"] for e in events],
        )
    }
    lost = [e for e in events if e["event_id"] not in recorded]
    emitted = {(e["order_id"], e["event_type"]) for e in events}
    states = ledgers.order_states(ids)
    silent = [
        {"order_id": oid, "status": row["status"]}
        for oid, row in states.items()
        if row["status"] in TERMINAL_EVENT and (oid, TERMINAL_EVENT[row["status"]]) not in emitted
    ]
    return Check(
        "no lost notification record (every notifying event of an accepted order has its row)",
        not lost and not silent,
        {
            "notifying_events": len(events),
            "recorded": len(recorded),
            "without_row": [
                {k: e[k] for k in ("order_id", "event_type", "published")} for e in lost[:SHOWN]
            ],
            "without_row_count": len(lost),
            "terminal_without_event": silent[:SHOWN],
        },
    )


def gateway_answers(record, origin):
    """Every error the gateway returned was a 503 or a 429 (no 500, no 502...);
    connection errors (the gateway down) are counted apart."""
    with record.lock:
        answers = list(record.answers)
    bad = [
        a for a in answers if a.status is not None and a.status >= 400 and a.status not in RETRYABLE
    ]
    connection_errors = Counter(a.error for a in answers if a.status is None)
    return Check(
        "every error the gateway returned was a 503 or 429",
        not bad,
        {
            "answers": len(answers),
            "by_status": dict(Counter(str(a.status) for a in answers if a.status is not None)),
            "connection_errors": dict(connection_errors),
            "connection_errors_seen": _grouped([a for a in answers if a.status is None], origin),
            "other_errors": [
                {
                    "at_s": round(a.at - origin, 2),
                    "kind": a.kind,
                    "status": a.status,
                    "body": a.body,
                }
                for a in bad[:SHOWN]
            ],
            "other_errors_count": len(bad),
            "accepted": sum(1 for a in answers if a.kind == "place" and a.status in ACCEPTED),
        },
    )


def no_crash(exits):
    """No platform process died on its own (a fault's kill -9 is not counted):
    a supervisor restarts such a process, but it is a bug all the same."""
    return Check(
        "no process exited on its own (only the kill -9 faults stop processes)",
        not exits,
        {"exits": exits},
    )


def _grouped(answers, origin):
    """``{error message: {count, first_s, last_s}}``: when each kind of error was seen."""
    groups = {}
    for answer in answers:
        moment = round(answer.at - origin, 1)
        group = groups.setdefault(answer.body, {"count": 0, "first_s": moment, "last_s": moment})
        group["count"] += 1
        group["last_s"] = max(group["last_s"], moment)
        group["first_s"] = min(group["first_s"], moment)
    return groups
