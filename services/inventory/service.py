"""The inventory service: stock per SKU and warehouse, and the orders' reservations.

Stock is never oversold: every change locks the stock rows it reads with
``SELECT ... FOR UPDATE`` in (sku, warehouse) order, and the table's CHECK
keeps ``0 <= reserved <= on_hand`` whatever happens. Reservations follow the
order saga over events (see ``EVENTS`` and the ``on_order_*`` handlers).
"""

import logging

from nameko.dependency_providers import Config

from services.chassis.db import Database
from services.chassis.errors import Conflict, NotFound, UnknownSku
from services.chassis.messaging import EventDispatcher, event_handler, rpc
from services.chassis.schemas import validate
from services.chassis.service import AgoraService, DeadLetterAdmin, setting_timer
from services.chassis.service_client import ServiceClient
from services.chassis.values import utcnow
from services.inventory import domain, models
from services.inventory.models import Base
from services.inventory.schemas import (
    EVENTS,
    ORDER_ARGS,
    ORDER_CREATED_DATA,
    ORDER_REF_DATA,
    PRODUCT_CREATED_DATA,
    SKU_ARGS,
    STOCK_ADJUST_ARGS,
    STOCK_SET_ARGS,
    WAREHOUSE_SYNC,
)

log = logging.getLogger(__name__)


class InventoryService(DeadLetterAdmin, AgoraService):
    name = "inventory"

    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)
    config = Config()
    catalog = ServiceClient("catalog")

    def _settings(self):
        return self.config["AGORA"]["services"]["inventory"]

    # --- the catalog's SKUs ----------------------------------------------------------

    @event_handler("catalog", "product_created")
    def on_product_created(self, event):
        """Learn the new product's SKU: stock may be set for it from now on."""
        data = validate(PRODUCT_CREATED_DATA, event["data"], "malformed catalog.product_created")
        models.learn_skus(self.db.session, {data["product"]["sku"]})

    def _unknown_skus(self, skus):
        """The SKUs among ``skus`` that no catalog product has.

        Known ones come from the projection; a SKU it has not heard of (a
        product older than the projection, or whose product_created is still
        on its way, as when stock is set right after the product is created)
        is asked of the catalog once, then remembered."""
        session = self.db.session
        missing = set(skus) - models.known_skus(session, skus)
        if not missing:
            return set()
        # A catalog that cannot answer: ServiceUnavailable, nothing is learnt.
        found = set(self.catalog.known_skus(sorted(missing)))
        models.learn_skus(session, found & missing)
        return missing - found

    def _require_known(self, sku):
        if self._unknown_skus({sku}):
            raise UnknownSku("no product has this sku", {"sku": sku})

    # --- stock ---------------------------------------------------------------------

    @rpc
    def get_stock(self, sku):
        """The stock of ``sku`` in every warehouse and in total; ``NotFound`` if none."""
        validate(SKU_ARGS, {"sku": sku}, "invalid sku")
        return self._stock(sku)

    @rpc
    def set_stock(self, sku, warehouse, on_hand):
        """Set on_hand of ``sku`` in ``warehouse`` (created if new); ``Conflict`` below
        what is reserved there, ``UnknownSku`` unless a product has the SKU. Emits
        ``stock_changed`` if it changed."""
        arguments = {"sku": sku, "warehouse": warehouse, "on_hand": on_hand}
        validate(STOCK_SET_ARGS, arguments, "invalid stock")
        self._require_known(sku)
        now = utcnow()
        rows, created = models.lock_or_create_stock(self.db.session, [(sku, warehouse)], now)
        row = rows[(sku, warehouse)]
        new = domain.set_on_hand(domain.whole(on_hand), row.reserved, sku, warehouse)
        self._change(row, new, (sku, warehouse) in created, domain.SET, now)
        return self._stock(sku)

    @rpc
    def adjust_stock(self, sku, warehouse, delta, reason):
        """Add ``delta`` (not 0) to on_hand; ``Conflict`` below 0 or below what is
        reserved. A positive delta creates a missing row. Emits ``stock_changed``."""
        arguments = {"sku": sku, "warehouse": warehouse, "delta": delta, "reason": reason}
        validate(STOCK_ADJUST_ARGS, arguments, "invalid stock adjustment")
        self._require_known(sku)
        delta = domain.whole(delta)
        now = utcnow()
        session = self.db.session
        key = (sku, warehouse)
        if delta > 0:
            rows, created = models.lock_or_create_stock(session, [key], now)
        else:
            rows, created = models.lock_stock(session, [key]), set()
        row = rows.get(key)
        on_hand, reserved = (row.on_hand, row.reserved) if row is not None else (0, 0)
        new = domain.adjusted_on_hand(on_hand, reserved, delta)
        self._change(row, new, key in created, domain.ADJUST, now)
        log.info("stock of %s in %s adjusted by %+d: %s", sku, warehouse, delta, reason)
        return self._stock(sku)

    @rpc
    def sync_warehouse(self, sync_id, warehouse, levels):
        """Set on_hand of each listed SKU in ``warehouse`` (SKUs not listed keep
        theirs), all or nothing. The same ``sync_id`` again changes nothing and
        answers ``replayed: true``; with another body it is a ``Conflict``.
        Emits ``stock_changed`` per changed row."""
        arguments = {"sync_id": sync_id, "warehouse": warehouse, "levels": levels}
        validate(WAREHOUSE_SYNC, arguments, "invalid warehouse sync")
        wanted = domain.sync_levels(levels)
        unknown = self._unknown_skus(set(wanted))
        if unknown:
            raise UnknownSku(
                "no product has these skus",
                {
                    f"levels.{index}.sku": "no product has this sku"
                    for index, level in enumerate(levels)
                    if level["sku"] in unknown
                },
            )
        body_hash = domain.sync_body_hash(warehouse, levels)
        session = self.db.session
        if not models.insert_sync(session, sync_id, warehouse, body_hash):
            sync = models.find_sync(session, sync_id)
            if sync.body_hash != body_hash:
                raise Conflict(
                    "this sync_id was used for a different sync",
                    {"sync_id": "already used for a different sync"},
                )
            return self._sync_result(sync, replayed=True)
        now = utcnow()
        keys = [(sku, warehouse) for sku in wanted]
        rows, created = models.lock_or_create_stock(session, keys, now)
        shortfalls = domain.sync_shortfalls(levels, {k[0]: r.reserved for k, r in rows.items()})
        if shortfalls:
            raise Conflict("on_hand would be below the reserved quantity", shortfalls)
        applied = 0
        for key in domain.lock_order(keys):
            if self._change(rows[key], wanted[key[0]], key in created, domain.SYNC, now):
                applied += 1
        sync = models.find_sync(session, sync_id)
        sync.applied = applied
        return self._sync_result(sync, replayed=False)

    def _stock(self, sku):
        rows = models.stock_rows(self.db.session, sku)
        if not rows:
            raise NotFound("no stock for this sku", {"sku": sku})
        return domain.stock_view(sku, rows)

    def _change(self, row, on_hand, created, reason, now):
        """Store a new on_hand; emit ``stock_changed`` if the row is new or changed."""
        if row.on_hand == on_hand and not created:
            return False
        row.on_hand = on_hand
        row.updated_at = now
        self.db.session.flush()
        self.dispatch("stock_changed", domain.stock_changed(row, reason))
        return True

    @staticmethod
    def _sync_result(sync, replayed):
        return {
            "sync_id": sync.sync_id,
            "warehouse": sync.warehouse,
            "applied": sync.applied,
            "replayed": replayed,
        }

    # --- reservations ------------------------------------------------------------------

    @rpc
    def get_reservation(self, order_id):
        """The reservation of an order (a tombstone too: released, no lines); ``NotFound``."""
        validate(ORDER_ARGS, {"order_id": order_id}, "invalid order id")
        reservation = models.find_reservation(self.db.session, order_id)
        if reservation is None:
            raise NotFound("no reservation for this order", {"order_id": order_id})
        lines = models.reservation_lines(self.db.session, [reservation.id])
        return domain.reservation_view(reservation, lines)

    @event_handler("orders", "order_created")
    def on_order_created(self, event):
        """Reserve every line of the order or none -> stock_reserved | reservation_rejected."""
        data = validate(ORDER_CREATED_DATA, event["data"], "malformed orders.order_created")
        order_id = data["order_id"]
        session = self.db.session
        settings = self._settings()
        now = utcnow()
        values = domain.new_reservation(order_id, now, settings["reservation_ttl"])
        # First the order's own row: a concurrent event about the order waits on it.
        if not models.insert_reservation(session, values):
            log.info("order %s already has a reservation: order_created ignored", order_id)
            return
        requested = domain.requested_quantities(data["items"])
        available = models.lock_available(session, list(requested))
        allocation = domain.allocate(requested, available, settings["default_warehouse"])
        if not allocation.ok:
            # Kept, released and without lines, so the order is never reserved later.
            models.reject_reservation(session, values["id"], now)
            self.dispatch(
                "reservation_rejected",
                {"order_id": order_id, "shortages": list(allocation.shortages)},
            )
            return
        # The rows are locked and the allocation fits what they had available:
        # the check constraint (on_hand >= reserved) cannot fail here.
        models.reserve_lines(session, values["id"], allocation.lines, now)
        self.dispatch(
            "stock_reserved",
            domain.stock_reserved(order_id, values["id"], values["expires_at"], allocation.lines),
        )

    @event_handler("orders", "order_paid")
    def on_order_paid(self, event):
        """Commit the active reservation (stock leaves on_hand) -> reservation_committed;
        otherwise -> reservation_commit_failed. Already committed: nothing."""
        order_id = validate(ORDER_REF_DATA, event["data"], "malformed orders.order_paid")[
            "order_id"
        ]
        session = self.db.session
        reservation_id = models.commit_active_reservation(session, order_id, utcnow())
        if reservation_id is not None:
            self.dispatch(
                "reservation_committed",
                {"order_id": order_id, "reservation_id": str(reservation_id)},
            )
            return
        # Not active: a concurrent release or expiry had the row first (the
        # update above waited for it), or the order was never reserved.
        status = models.reservation_status(session, order_id)
        if status == domain.COMMITTED:
            log.info("reservation of order %s already committed", order_id)
            return
        self.dispatch(
            "reservation_commit_failed",
            {"order_id": order_id, "reason": domain.commit_failure_reason(status)},
        )

    @event_handler("orders", "order_payment_failed")
    def on_order_payment_failed(self, event):
        self._release(event, "order_payment_failed")

    @event_handler("orders", "order_cancelled")
    def on_order_cancelled(self, event):
        self._release(event, "order_cancelled")

    @event_handler("orders", "order_expired")
    def on_order_expired(self, event):
        self._release(event, "order_expired")

    def _release(self, event, event_type):
        """Give back what the order holds -> reservation_released (once per order).

        Active: reserved -= q. Committed: the stock comes back, on_hand += q.
        Expired: nothing left to give back. No reservation yet: a tombstone, so
        a late order_created reserves nothing (reservation_id null in the event).
        """
        data = validate(ORDER_REF_DATA, event["data"], f"malformed orders.{event_type}")
        order_id = data["order_id"]
        reason = domain.RELEASE_REASONS[event_type]
        session = self.db.session
        now = utcnow()
        reservation = models.find_reservation(session, order_id, for_update=True)
        if reservation is None:
            if models.insert_reservation(session, domain.tombstone(order_id, now)):
                self.dispatch(
                    "reservation_released",
                    {"order_id": order_id, "reservation_id": None, "reason": reason},
                )
                return
            # order_created won the race for the order's row: release what it made.
            reservation = models.find_reservation(session, order_id, for_update=True)
        if reservation.status == domain.RELEASED:
            log.info("reservation of order %s already released", order_id)
            return
        effect = domain.release_effect(reservation.status)
        for line, row in self._locked_lines([reservation]) if effect else ():
            if effect == domain.RESTORE_RESERVED:
                row.reserved -= line.quantity
            else:
                row.on_hand += line.quantity
            row.updated_at = now
        reservation.status = domain.RELEASED
        reservation.updated_at = now
        session.flush()
        self.dispatch(
            "reservation_released",
            {"order_id": order_id, "reservation_id": str(reservation.id), "reason": reason},
        )

    @setting_timer("expiry_interval", until_due=True)
    def expire_reservations(self):
        """Active reservations past expires_at -> expired, reserved -= q -> reservation_expired.

        Rows another replica is sweeping (or an event is settling) are skipped.
        Returns in how many seconds the next active reservation expires (one
        made later expires at least reservation_ttl away)."""
        session = self.db.session
        now = utcnow()
        batch = models.claim_expired_reservations(session, now, domain.EXPIRY_BATCH)
        if batch:
            self._expire(batch, now)
        expiry = models.next_expiry(session)
        ttl = self._settings()["reservation_ttl"]
        return ttl if expiry is None else min(ttl, (expiry - now).total_seconds())

    def _expire(self, batch, now):
        """Release the stock these reservations held; each one tells orders."""
        for line, row in self._locked_lines(batch):
            row.reserved -= line.quantity
            row.updated_at = now
        for reservation in batch:
            reservation.status = domain.EXPIRED
            reservation.updated_at = now
            self.dispatch(
                "reservation_expired",
                {"order_id": str(reservation.order_id), "reservation_id": str(reservation.id)},
            )
        self.db.session.flush()
        log.info("expired %d reservations", len(batch))

    def _locked_lines(self, reservations):
        """``(line, stock row)`` of these reservations, the stock rows locked in order."""
        session = self.db.session
        lines = models.reservation_lines(session, [r.id for r in reservations])
        rows = models.lock_stock(session, [(line.sku, line.warehouse) for line in lines])
        return [(line, rows[(line.sku, line.warehouse)]) for line in lines]
