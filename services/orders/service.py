"""The orders service: places orders and orchestrates their saga over events.

The status machine is ``domain.RULES``; every handler here locks the order row
(``SELECT ... FOR UPDATE``), asks the domain what the event means for the order
in its current status, writes the change and its history, and dispatches the
resulting events in the same transaction. Events that do not apply are noted
in the order's history and otherwise ignored. Billing's refunds are noted too
(``domain.customer_history`` is what the customer reads of it).
"""

import functools
import logging
import uuid
from types import SimpleNamespace

from nameko.dependency_providers import Config

from services.chassis import cursors
from services.chassis.db import Database
from services.chassis.errors import Conflict, NotFound, ValidationError
from services.chassis.messaging import EventDispatcher, event_handler, rpc
from services.chassis.metrics import (
    ORDERS_STATUS_CHANGES,
    SAGA_DURATION,
    SAGA_TIMEOUTS,
    children,
)
from services.chassis.schemas import validate
from services.chassis.service import AgoraService, DeadLetterAdmin, setting_timer
from services.chassis.service_client import ServiceClient
from services.chassis.values import parse_uuid, utcnow
from services.orders import domain
from services.orders.models import (
    Base,
    find_by_idempotency_key,
    find_order,
    history_of,
    insert_order,
    lines_of,
    lock_order_with_lines,
    next_deadline,
    order_id_for_key,
    orders_of,
    overdue_orders,
    record_change,
    status_and_token,
)
from services.orders.schemas import (
    CANCEL_ARGS,
    CREATE_ARGS,
    EVENTS,
    LIST_QUERY,
    ORDER_CREATE,
    ORDER_REF_ARGS,
    OWNER_ARGS,
)

log = logging.getLogger(__name__)

SWEEP_BATCH = 100

_entered = children(ORDERS_STATUS_CHANGES, "orders", known=domain.STATUSES)
_saga_ended = children(SAGA_DURATION, "orders", known=domain.TERMINAL)
_saga_timeouts = SAGA_TIMEOUTS.labels("orders")


def _count_change(previous, status, placed_at, trigger):
    """After the commit that moved an order from ``previous`` to ``status``."""
    _entered(status).inc()
    if domain.ends_saga(previous, status):
        _saga_ended(status).observe(max(0.0, (utcnow() - placed_at).total_seconds()))
        if trigger == domain.DEADLINE:
            _saga_timeouts.inc()


def _check(checks):
    """Validate several (schema, value) pairs; one ValidationError with every field."""
    details = {}
    for schema, value in checks:
        try:
            validate(schema, value)
        except ValidationError as exc:
            details.update(exc.details)
    if details:
        raise ValidationError("invalid request", details)


def _not_found(order_id):
    return NotFound("order not found", {"order_id": str(order_id)})


class OrdersService(DeadLetterAdmin, AgoraService):
    name = "orders"

    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)
    config = Config()
    catalog = ServiceClient("catalog")

    # --- RPC -----------------------------------------------------------------

    @rpc
    def create_order(self, user_id, payload, idempotency_key):
        """Place an order (pending) and emit ``order_created``: ``{"order", "created"}``.

        The same user and idempotency key with the same payload returns the
        order placed first (``created`` false), with another payload Conflict.
        """
        _check(
            (
                (CREATE_ARGS, {"user_id": user_id, "idempotency_key": idempotency_key}),
                (ORDER_CREATE, payload),
            )
        )
        settings = self._settings()
        domain.check_limits(payload, settings["max_lines"], settings["max_quantity"])
        digest = domain.request_hash(payload)
        owner = uuid.UUID(user_id)
        session = self.db.session

        if order_id_for_key(session, owner, idempotency_key) is not None:
            return self._replay(find_by_idempotency_key(session, owner, idempotency_key), digest)

        lines, total = domain.price_lines(payload["items"], self._products(payload["items"]))
        now = utcnow()
        values = domain.new_order(
            user_id, payload, idempotency_key, lines, total, now, settings["saga_timeout"]
        )
        line_values = domain.new_lines(lines)
        if not insert_order(session, values, line_values):
            # A concurrent request with the same key inserted first: its order is the answer.
            return self._replay(find_by_idempotency_key(session, owner, idempotency_key), digest)
        order = SimpleNamespace(**values, shortages=None)
        self.db.on_commit(_entered(order.status).inc)
        facts = domain.OrderFacts(
            id=str(order.id), user_id=user_id, status=order.status, items=lines, total=total
        )
        self.dispatch("order_created", domain.created_payload(facts, order.deadline_at))
        # The view from what was just written, not read back.
        history = SimpleNamespace(status=order.status, at=now, reason=None)
        order_lines = [SimpleNamespace(**line) for line in line_values]
        return {"order": domain.order_view(order, order_lines, [history]), "created": True}

    @rpc
    def get_order(self, order_id, user_id=None, operator=False):
        """One order; ``NotFound`` if unknown or (``user_id`` given) not that user's.
        ``operator``: with ``operator_history`` (for callers with ops:read)."""
        _check(((OWNER_ARGS, {"user_id": user_id, "operator": operator}),))
        order = self._owned(order_id, user_id)
        return self._views([order], operator=operator)[0]

    @rpc
    def list_orders(self, user_id, limit=domain.LIMIT_DEFAULT, cursor=None, status=None):
        """The user's orders, newest first, ``limit`` per page; ``status`` filters."""
        arguments = {"user_id": user_id, "limit": limit, "cursor": cursor, "status": status}
        _check(((LIST_QUERY, {k: v for k, v in arguments.items() if v is not None}),))
        limit = domain.LIMIT_DEFAULT if limit is None else limit
        listing = domain.listing_cursors(cursors.signing_key(self._settings()["cursor_key"]))
        after = listing.decode(cursor) if cursor is not None else None
        rows = orders_of(self.db.session, uuid.UUID(user_id), limit + 1, after, status)
        items, next_cursor = listing.page(rows, limit)
        return {"items": self._views(items), "next_cursor": next_cursor}

    @rpc
    def cancel_order(self, order_id, user_id):
        """The customer cancels: pending, reserved, paid or confirmed -> cancelled.

        A confirmed order only within ``cancellation_window`` seconds of its
        confirmation (``CancellationWindowClosed`` after: refunds are then an
        administrator's action). Emits ``order_cancelled`` (reason customer);
        ``Conflict`` with the current status otherwise; ``NotFound`` unless
        ``user_id`` owns it.
        """
        _check(((CANCEL_ARGS, {"user_id": user_id}),))
        order = self._owned(order_id, user_id, for_update=True)
        confirmed = None
        if order.status == domain.CONFIRMED:
            confirmed = domain.confirmed_at(history_of(self.db.session, [order.id])[order.id])
        window = self._settings()["cancellation_window"]
        domain.check_customer_cancel(order.status, confirmed, utcnow(), window)
        lines = lines_of(self.db.session, [order.id])[order.id]
        self._advance(order, lines, domain.CUSTOMER_CANCEL)
        # The row was changed by a Core statement: the view reads it again.
        self.db.session.expire(order)
        return self._views([order])[0]

    @rpc
    def get_payment_token(self, order_id):
        """The payment token of a reserved order, for billing to charge: ``{"payment_token"}``.

        The token never travels in an event; the order keeps it only while it is
        pending or reserved (``domain.HOLDS_TOKEN``) and drops it when billing
        reports the payment's outcome or the order closes, so billing may ask
        again (a redelivered request) until it has an answer. ``Conflict`` with
        the order's status once there is no token to give; ``NotFound``.
        """
        _check(((ORDER_REF_ARGS, {"order_id": order_id}),))
        parsed = parse_uuid(order_id)
        found = status_and_token(self.db.session, parsed) if parsed is not None else None
        if found is None:
            raise _not_found(order_id)
        status, token = found
        if not domain.releases_token(status, token):
            raise Conflict(f"an order that is {status} holds no payment token", {"status": status})
        return {"payment_token": token}

    # --- the saga --------------------------------------------------------------

    @event_handler("inventory", "stock_reserved")
    def on_stock_reserved(self, event):
        self._on_event(domain.STOCK_RESERVED, event)

    @event_handler("inventory", "reservation_rejected")
    def on_reservation_rejected(self, event):
        self._on_event(domain.RESERVATION_REJECTED, event)

    @event_handler("inventory", "reservation_committed")
    def on_reservation_committed(self, event):
        self._on_event(domain.RESERVATION_COMMITTED, event)

    @event_handler("inventory", "reservation_commit_failed")
    def on_reservation_commit_failed(self, event):
        self._on_event(domain.RESERVATION_COMMIT_FAILED, event)

    @event_handler("inventory", "reservation_released")
    def on_reservation_released(self, event):
        self._on_event(domain.RESERVATION_RELEASED, event)

    @event_handler("inventory", "reservation_expired")
    def on_reservation_expired(self, event):
        self._on_event(domain.RESERVATION_EXPIRED, event)

    @event_handler("billing", "payment_succeeded")
    def on_payment_succeeded(self, event):
        self._on_event(domain.PAYMENT_SUCCEEDED, event)

    @event_handler("billing", "payment_failed")
    def on_payment_failed(self, event):
        self._on_event(domain.PAYMENT_FAILED_EVENT, event)

    @event_handler("billing", "refund_issued")
    def on_refund_issued(self, event):
        """A refund (an administrator's, or the one that closes a paid order) goes
        in the order's history, its status unchanged: the customer reads "Refunded"."""
        data = event.get("data")
        data = data if isinstance(data, dict) else {}
        order_id = parse_uuid(data.get("order_id"))
        found = lock_order_with_lines(self.db.session, order_id) if order_id else None
        if found is None:
            log.warning("refund_issued for unknown order %s: dropped", data.get("order_id"))
            return
        order, _ = found
        entry = {
            "status": order.status,
            "reason": domain.refund_note(data),
            "event_id": parse_uuid(event.get("event_id")),
            "at": utcnow(),
        }
        record_change(self.db.session, order.id, None, entry)

    @setting_timer("sweep_interval", until_due=True)
    def sweep(self):
        """Open orders past their deadline: expired, or cancelled after a failed
        payment. Returns in how many seconds the next open order's deadline
        passes (an order placed later has one at least saga_timeout away)."""
        session = self.db.session
        now = utcnow()
        overdue = overdue_orders(session, now, SWEEP_BATCH)
        lines = lines_of(session, [order.id for order in overdue])
        for order in overdue:
            self._advance(order, lines[order.id], domain.DEADLINE)
        if overdue:
            log.info("swept %d overdue orders", len(overdue))
        deadline = next_deadline(session)
        saga_timeout = self._settings()["saga_timeout"]
        return (
            saga_timeout
            if deadline is None
            else min(saga_timeout, (deadline - now).total_seconds())
        )

    # --- helpers -------------------------------------------------------------

    def _settings(self):
        return self.config["AGORA"]["services"]["orders"]

    def _on_event(self, trigger, event):
        data = event.get("data")
        data = data if isinstance(data, dict) else {}
        order_id = parse_uuid(data.get("order_id"))
        if order_id is None:
            log.warning("%s without a valid order_id: dropped", trigger)
            return
        found = lock_order_with_lines(self.db.session, order_id)
        if found is None:
            log.warning("%s for unknown order %s: dropped", trigger, order_id)
            return
        # A redelivered event never gets here: the chassis inbox skips it.
        self._advance(*found, trigger, data, parse_uuid(event.get("event_id")))

    def _advance(self, order, lines, trigger, data=None, event_id=None):
        """Apply ``trigger`` to the locked ``order`` (with its ``lines``): new status,
        history, events."""
        outcome = domain.advance(domain.facts(order, lines), trigger, data)
        entry = {"status": order.status, "reason": None, "event_id": event_id, "at": utcnow()}
        if outcome is None:
            entry["reason"] = domain.ignored_reason(trigger, order.status)
            record_change(self.db.session, order.id, None, entry)
            log.info("order %s: %s", order.id, entry["reason"])
            return None
        change = {
            "status": outcome.status,
            "reason": outcome.reason,
            "payment_id": outcome.payment_id,
            "updated_at": entry["at"],
        }
        if outcome.clear_token:
            change["payment_token"] = None
        if outcome.shortages is not None:
            change["shortages"] = outcome.shortages
        entry.update(status=outcome.status, reason=outcome.note)
        record_change(self.db.session, order.id, change, entry)
        self.db.on_commit(
            functools.partial(
                _count_change, order.status, outcome.status, order.created_at, trigger
            )
        )
        for name, payload in outcome.events:
            self.dispatch(name, payload)
        return outcome

    def _owned(self, order_id, user_id, for_update=False):
        parsed = parse_uuid(order_id)
        if parsed is None:
            raise _not_found(order_id)
        order = find_order(self.db.session, parsed, for_update=for_update)
        if order is None or (user_id is not None and order.user_id != uuid.UUID(user_id)):
            raise _not_found(parsed)
        return order

    def _replay(self, order, digest):
        if order.request_hash != digest:
            raise Conflict(
                "idempotency key reused with a different request",
                {"idempotency_key": "was used for a different request"},
            ) from None
        return {"order": self._views([order])[0], "created": False}

    def _products(self, items):
        """{product_id: PRODUCT or None (unknown)} from the catalog; a catalog that
        cannot answer is ``ServiceUnavailable`` (503 to the client, nothing written)."""
        products = {}
        for item in items:
            product_id = item["product_id"]
            if product_id in products:
                continue
            try:
                products[product_id] = self.catalog.get_product(product_id)
            except NotFound:
                products[product_id] = None
        return products

    def _views(self, orders, operator=False):
        ids = [order.id for order in orders]
        session = self.db.session
        lines = lines_of(session, ids)
        history = history_of(session, ids)
        return [
            domain.order_view(order, lines[order.id], history[order.id], operator)
            for order in orders
        ]
