"""Tables of the inventory service (its own database), and the queries on them.

Locking discipline (no deadlocks): a transaction locks at most one
reservation row it waits for (the order's), or a batch taken with SKIP LOCKED,
*then* stock rows, always all at once in (sku, warehouse) order.
"""

import datetime
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
    bindparam,
    func,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.chassis.events import event_tables
from services.chassis.schemas import SKU_PATTERN
from services.inventory import domain


class Base(DeclarativeBase):
    pass


OutboxEvent, InboxEvent = event_tables(Base)


class CatalogSku(Base):
    """The catalog's SKUs as inventory knows them (a projection fed by
    ``catalog.product_created``, filled in from ``catalog.known_skus`` on a miss):
    stock is kept only for these."""

    __tablename__ = "catalog_skus"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    learned_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class StockLevel(Base):
    """What one warehouse holds of one SKU; available = on_hand - reserved, never < 0."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint("reserved >= 0 AND on_hand >= reserved", name="ck_stock_levels_quantities"),
        CheckConstraint(f"sku ~ '{SKU_PATTERN}'", name="ck_stock_levels_sku"),
        CheckConstraint(
            f"warehouse ~ '{domain.WAREHOUSE_PATTERN}'", name="ck_stock_levels_warehouse"
        ),
    )

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse: Mapped[str] = mapped_column(String(32), primary_key=True)
    on_hand: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reserved: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class Reservation(Base):
    """One per order (also a tombstone: released, no lines, no expires_at)."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'committed', 'released', 'expired')",
            name="ck_reservations_status",
        ),
        CheckConstraint(
            "status <> 'active' OR expires_at IS NOT NULL", name="ck_reservations_expires_at"
        ),
        UniqueConstraint("order_id", name="uq_reservations_order_id"),
        # The expiry sweep walks active reservations by deadline.
        Index(
            "ix_reservations_active_expires_at",
            "expires_at",
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    expires_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class ReservationLine(Base):
    """A quantity of one SKU held in one warehouse for a reservation."""

    __tablename__ = "reservation_lines"
    __table_args__ = (
        ForeignKeyConstraint(
            ["sku", "warehouse"],
            ["stock_levels.sku", "stock_levels.warehouse"],
            name="fk_reservation_lines_stock",
        ),
        CheckConstraint("quantity > 0", name="ck_reservation_lines_quantity"),
    )

    reservation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("reservations.id", ondelete="CASCADE"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger, nullable=False)


class StockSync(Base):
    """A warehouse sync already applied: its id makes a retry a replay."""

    __tablename__ = "stock_syncs"

    sync_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    warehouse: Mapped[str] = mapped_column(String(32), nullable=False)
    body_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    applied: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


# --- stock -----------------------------------------------------------------------------


def known_skus(session, skus):
    """The SKUs among ``skus`` that inventory knows the catalog has."""
    if not skus:
        return set()
    return set(session.scalars(select(CatalogSku.sku).where(CatalogSku.sku.in_(list(skus)))))


def learn_skus(session, skus):
    """Add catalog SKUs to the projection (already known ones are left as they are)."""
    if skus:
        rows = [{"sku": sku} for sku in sorted(skus)]
        session.execute(insert(CatalogSku).values(rows).on_conflict_do_nothing())


def stock_rows(session, sku):
    """The stock rows of ``sku`` (no lock), in warehouse order."""
    query = select(StockLevel).where(StockLevel.sku == sku).order_by(StockLevel.warehouse)
    return list(session.scalars(query))


def _locked(query):
    return (
        query.order_by(StockLevel.sku, StockLevel.warehouse)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def lock_stock(session, keys):
    """The stock rows with these ``(sku, warehouse)`` keys, locked in that order."""
    keys = domain.lock_order(keys)
    if not keys:
        return {}
    query = select(StockLevel).where(tuple_(StockLevel.sku, StockLevel.warehouse).in_(keys))
    return {(row.sku, row.warehouse): row for row in session.scalars(_locked(query))}


def lock_or_create_stock(session, keys, now):
    """Lock the stock rows of ``keys``, creating missing ones (on_hand 0).

    One upsert in (sku, warehouse) order takes every row lock (existing or new)
    in the global order. Returns ``({key: row}, {keys created})``.
    """
    keys = domain.lock_order(keys)
    if not keys:
        return {}, set()
    upsert = insert(StockLevel).values(
        [
            {"sku": sku, "warehouse": warehouse, "on_hand": 0, "reserved": 0, "updated_at": now}
            for sku, warehouse in keys
        ]
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=[StockLevel.sku, StockLevel.warehouse],
        # A no-op update: it only takes the row lock.
        set_={"on_hand": StockLevel.on_hand},
    ).returning(StockLevel.sku, StockLevel.warehouse, literal_column("xmax = 0"))
    created = {(sku, warehouse) for sku, warehouse, inserted in session.execute(upsert) if inserted}
    return lock_stock(session, keys), created


# --- reservations ----------------------------------------------------------------------


# Text, because SQLAlchemy compiles a PostgreSQL INSERT ... ON CONFLICT construct
# anew at every execution (a measurable share of this service's CPU per order).
_INSERT_RESERVATION = text(
    """
    INSERT INTO reservations (id, order_id, status, expires_at, created_at, updated_at)
    VALUES (:id, :order_id, :status, :expires_at, :created_at, :updated_at)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING id
    """
).bindparams(bindparam("id", type_=Uuid), bindparam("order_id", type_=Uuid))


def insert_reservation(session, values):
    """Insert the order's reservation row unless the order has one; True if inserted.

    The unique order_id makes a concurrent insert for the same order wait for
    the first one's transaction, then do nothing.
    """
    return session.execute(_INSERT_RESERVATION, values).scalar_one_or_none() is not None


def find_reservation(session, order_id, for_update=False):
    query = select(Reservation).where(Reservation.order_id == uuid.UUID(order_id))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).one_or_none()


def reservation_lines(session, reservation_ids):
    """The lines of these reservations, in (reservation, sku, warehouse) order."""
    if not reservation_ids:
        return []
    query = (
        select(ReservationLine)
        .where(ReservationLine.reservation_id.in_(reservation_ids))
        .order_by(ReservationLine.reservation_id, ReservationLine.sku, ReservationLine.warehouse)
    )
    return list(session.scalars(query))


def next_expiry(session):
    """When the earliest active reservation expires, or None if none is active."""
    return session.scalar(
        select(func.min(Reservation.expires_at)).where(Reservation.status == domain.ACTIVE)
    )


def claim_expired_reservations(session, now, limit):
    """Active reservations past their deadline, locked; rows other workers hold are skipped."""
    query = (
        select(Reservation)
        .where(Reservation.status == domain.ACTIVE, Reservation.expires_at <= now)
        .order_by(Reservation.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


# --- syncs -----------------------------------------------------------------------------


def insert_sync(session, sync_id, warehouse, body_hash):
    """Record a sync unless its id is known; True if this call recorded it."""
    statement = (
        insert(StockSync)
        .values(sync_id=sync_id, warehouse=warehouse, body_hash=body_hash, applied=0)
        .on_conflict_do_nothing(index_elements=[StockSync.sync_id])
        .returning(StockSync.sync_id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def find_sync(session, sync_id):
    return session.get(StockSync, sync_id, populate_existing=True)


# --- the saga's hot path, in Core ------------------------------------------------------
# Built once (SQLAlchemy caches their compiled form) and without ORM loads or
# flushes: a reservation and its commit are the bulk of this service's work per order.

_stock = StockLevel.__table__
_reservations = Reservation.__table__
_reservation_lines = ReservationLine.__table__

_LOCK_AVAILABLE = (
    select(_stock.c.sku, _stock.c.warehouse, _stock.c.on_hand - _stock.c.reserved)
    .where(_stock.c.sku.in_(bindparam("skus", expanding=True)))
    .order_by(_stock.c.sku, _stock.c.warehouse)
    .with_for_update()
)


def lock_available(session, skus):
    """``{(sku, warehouse): available}`` of every stock row of these SKUs, the rows
    locked in (sku, warehouse) order."""
    if not skus:
        return {}
    rows = session.execute(_LOCK_AVAILABLE, {"skus": list(skus)})
    return {(sku, warehouse): available for sku, warehouse, available in rows}


# One line of a reservation and what it takes from its (already locked) stock row.
_RESERVE_LINE = text(
    """
    WITH line AS (
        INSERT INTO reservation_lines (reservation_id, sku, warehouse, quantity)
        VALUES (:reservation_id, :sku, :warehouse, :quantity)
    )
    UPDATE stock_levels SET reserved = reserved + :quantity, updated_at = :now
    WHERE sku = :sku AND warehouse = :warehouse
    """
).bindparams(bindparam("reservation_id", type_=Uuid))


def reserve_lines(session, reservation_id, lines, now):
    """Record the reservation's ``(sku, warehouse, quantity)`` lines and hold their stock."""
    for sku, warehouse, quantity in lines:
        session.execute(
            _RESERVE_LINE,
            {
                "reservation_id": reservation_id,
                "sku": sku,
                "warehouse": warehouse,
                "quantity": quantity,
                "now": now,
            },
        )


_REJECT = (
    update(_reservations)
    .where(_reservations.c.id == bindparam("reservation_id"))
    .values(status=domain.RELEASED, expires_at=None, updated_at=bindparam("now"))
)


def reject_reservation(session, reservation_id, now):
    """The reservation just inserted is kept released, without lines or expiry."""
    session.execute(_REJECT, {"reservation_id": reservation_id, "now": now})


# Commit the order's active reservation: its stock leaves on_hand. The stock rows
# are locked in (sku, warehouse) order (the CTE with FOR UPDATE runs first and
# once), after the reservation row, as everywhere else.
_COMMIT = text(
    f"""
    WITH committed AS (
        UPDATE reservations SET status = '{domain.COMMITTED}', updated_at = :now
        WHERE order_id = :order_id AND status = '{domain.ACTIVE}'
        RETURNING id
    ), locked AS (
        SELECT s.sku, s.warehouse, l.quantity
        FROM stock_levels s
        JOIN reservation_lines l ON l.sku = s.sku AND l.warehouse = s.warehouse
        JOIN committed c ON l.reservation_id = c.id
        ORDER BY s.sku, s.warehouse
        FOR UPDATE OF s
    ), taken AS (
        UPDATE stock_levels s
        SET on_hand = s.on_hand - locked.quantity,
            reserved = s.reserved - locked.quantity,
            updated_at = :now
        FROM locked
        WHERE s.sku = locked.sku AND s.warehouse = locked.warehouse
    )
    SELECT id FROM committed
    """
).bindparams(bindparam("order_id", type_=Uuid))


def commit_active_reservation(session, order_id, now):
    """Commit the order's reservation if it is active; its id, or None (not active)."""
    return session.execute(_COMMIT, {"order_id": uuid.UUID(order_id), "now": now}).scalar()


_STATUS = select(_reservations.c.status).where(_reservations.c.order_id == bindparam("order_id"))


def reservation_status(session, order_id):
    """The status of the order's reservation, or None if it has none."""
    return session.scalar(_STATUS, {"order_id": uuid.UUID(order_id)})
