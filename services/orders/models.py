"""Tables of the orders service (its own database), and the queries on them."""

import datetime
import uuid
from collections import namedtuple

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    bindparam,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.chassis.events import event_tables
from services.orders import domain


class Base(DeclarativeBase):
    pass


OutboxEvent, InboxEvent = event_tables(Base)

# Named, so a replayed create_order is told apart from other unique violations.
IDEMPOTENCY_CONSTRAINT = "uq_orders_user_id_idempotency_key"
STATUS_CHECK = "status IN ({})".format(", ".join(f"'{s}'" for s in domain.STATUSES))
OPEN_WHERE = "status IN ({})".format(", ".join(f"'{s}'" for s in domain.OPEN))
HOLDS_TOKEN_WHERE = "status IN ({})".format(
    ", ".join(f"'{s}'" for s in domain.STATUSES if s in domain.HOLDS_TOKEN)
)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name=IDEMPOTENCY_CONSTRAINT),
        CheckConstraint(STATUS_CHECK, name="ck_orders_status"),
        CheckConstraint("total_amount >= 0", name="ck_orders_total_amount"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_orders_currency"),
        CheckConstraint(
            f"payment_token IS NULL OR {HOLDS_TOKEN_WHERE}",
            name="ck_orders_payment_token_while_open",
        ),
        # "My orders", newest first (keyset on created_at, id).
        Index(
            "ix_orders_user_created",
            "user_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        # The sweep: open orders by deadline.
        Index("ix_orders_open_deadline", "deadline_at", postgresql_where=text(OPEN_WHERE)),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    total_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # Kept only while pending or reserved (billing reads it over RPC), then NULL.
    payment_token: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A rejected order's [{"sku", "requested", "available"}], from inventory.
    shortages: Mapped[list | None] = mapped_column(JSONB, nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    deadline_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_order_lines_quantity"),
        CheckConstraint("unit_price_amount >= 0", name="ck_order_lines_unit_price_amount"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_price_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)


class OrderHistory(Base):
    """Every change of status, and every event that was ignored, oldest first by id."""

    __tablename__ = "order_history"
    __table_args__ = (
        Index("ix_order_history_order_id", "order_id", "id"),
        # One entry per incoming event and order: a redelivery finds its entry.
        Index(
            "uq_order_history_event",
            "order_id",
            "event_id",
            unique=True,
            postgresql_where=text("event_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


def find_order(session, order_id, for_update=False):
    """The order with this id (a UUID), or None; ``for_update`` locks its row."""
    query = select(Order).where(Order.id == order_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def find_by_idempotency_key(session, user_id, idempotency_key):
    query = select(Order).where(Order.user_id == user_id, Order.idempotency_key == idempotency_key)
    return session.scalars(query).one_or_none()


def lines_of(session, order_ids):
    """{order_id: [OrderLine in line_no order]} for these orders."""
    return _per_order(session, OrderLine, order_ids, OrderLine.line_no)


def history_of(session, order_ids):
    """{order_id: [OrderHistory, oldest first]} for these orders."""
    return _per_order(session, OrderHistory, order_ids, OrderHistory.id)


def _per_order(session, model, order_ids, position):
    """{order_id: [rows of ``model`` in ``position`` order]}, every order present."""
    rows = session.scalars(
        select(model).where(model.order_id.in_(order_ids)).order_by(model.order_id, position)
    )
    found = {order_id: [] for order_id in order_ids}
    for row in rows:
        found[row.order_id].append(row)
    return found


def orders_of(session, user_id, limit, after=None, status=None):
    """Up to ``limit`` orders of ``user_id``, newest first, after ``(created_at, id)``."""
    query = select(Order).where(Order.user_id == user_id)
    if status is not None:
        query = query.where(Order.status == status)
    if after is not None:
        query = query.where(tuple_(Order.created_at, Order.id) < tuple_(*after))
    query = query.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit)
    return list(session.scalars(query))


def next_deadline(session):
    """The earliest deadline of an open order, or None if none is open."""
    return session.scalar(select(func.min(Order.deadline_at)).where(Order.status.in_(domain.OPEN)))


def overdue_orders(session, now, limit):
    """Up to ``limit`` open orders past their deadline, locked; rows locked elsewhere skipped."""
    query = (
        select(Order)
        .where(Order.status.in_(domain.OPEN), Order.deadline_at < now)
        .order_by(Order.deadline_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


# --- the saga's hot path, in Core ------------------------------------------------
# The statements below are built once: SQLAlchemy caches their compiled form, and
# they skip the ORM's load and flush (about a third of this service's CPU per order
# when the saga ran through ORM objects).

_orders = Order.__table__
_lines = OrderLine.__table__
_history = OrderHistory.__table__

# What the status machine reads of an order (domain.facts) and of its lines (line_view).
OrderRow = namedtuple(
    "OrderRow",
    "id user_id status total_amount currency payment_id reason deadline_at created_at",
)
LineRow = namedtuple("LineRow", "product_id sku name quantity unit_price_amount currency")

_LOCK_WITH_LINES = (
    select(
        *(_orders.c[name] for name in OrderRow._fields),
        *(_lines.c[name].label(f"line_{name}") for name in LineRow._fields),
    )
    .select_from(_orders.outerjoin(_lines, _lines.c.order_id == _orders.c.id))
    .where(_orders.c.id == bindparam("order_id"))
    .order_by(_lines.c.line_no)
    .with_for_update(of=_orders)
)


def lock_order_with_lines(session, order_id):
    """``(OrderRow, [LineRow in line_no order])`` of the order, its row locked; None if unknown.

    One round trip: the order joined to its lines, one row per line."""
    rows = session.execute(_LOCK_WITH_LINES, {"order_id": order_id}).all()
    if not rows:
        return None
    width = len(OrderRow._fields)
    order = OrderRow(*rows[0][:width])
    lines = [LineRow(*row[width:]) for row in rows if row[width + 1] is not None]
    return order, lines


# A new order and its first history entry in one statement; no row when the user's
# idempotency key is taken (a concurrent insert with it waits here for that
# transaction, then sees its outcome).
# A new order and its first history entry in one statement; no row when the user's
# idempotency key is taken (a concurrent insert with it waits here for that
# transaction, then sees its outcome). Text, because SQLAlchemy compiles a
# PostgreSQL INSERT ... ON CONFLICT construct anew at every execution.
_NEW_ORDER_COLUMNS = (
    "id user_id status total_amount currency payment_token payment_id reason "
    "idempotency_key request_hash deadline_at created_at updated_at"
).split()
_INSERT_ORDER = text(
    f"""
    WITH placed AS (
        INSERT INTO orders ({", ".join(_NEW_ORDER_COLUMNS)})
        VALUES ({", ".join(f":{name}" for name in _NEW_ORDER_COLUMNS)})
        ON CONFLICT ON CONSTRAINT {IDEMPOTENCY_CONSTRAINT} DO NOTHING
        RETURNING id, status, created_at
    )
    INSERT INTO order_history (order_id, status, at)
    SELECT id, status, created_at FROM placed
    RETURNING order_id
    """
).bindparams(bindparam("id", type_=Uuid), bindparam("user_id", type_=Uuid))


def insert_order(session, values, lines):
    """Insert the order (``values``), its history entry and its ``lines`` (order_lines
    values without order_id); False, and nothing written, if its idempotency key is taken."""
    if session.execute(_INSERT_ORDER, values).first() is None:
        return False
    session.execute(insert(_lines), [{"order_id": values["id"], **line} for line in lines])
    return True


_IDEMPOTENT_ORDER = select(_orders.c.id).where(
    _orders.c.user_id == bindparam("user_id"),
    _orders.c.idempotency_key == bindparam("idempotency_key"),
)


def order_id_for_key(session, user_id, idempotency_key):
    """The id of the user's order placed with ``idempotency_key``, or None."""
    return session.scalar(
        _IDEMPOTENT_ORDER, {"user_id": user_id, "idempotency_key": idempotency_key}
    )


_TOKEN = select(_orders.c.status, _orders.c.payment_token).where(
    _orders.c.id == bindparam("order_id")
)


def status_and_token(session, order_id):
    """``(status, payment_token)`` of the order, or None if unknown."""
    return session.execute(_TOKEN, {"order_id": order_id}).first()


def record_change(session, order_id, change, entry):
    """The order's new column values (``change``, or None: unchanged) and its history
    ``entry`` ({status, reason, event_id, at}), in one statement."""
    if change is None:
        session.execute(insert(_history).values(order_id=order_id, **entry))
        return
    changed = (
        update(_orders)
        .where(_orders.c.id == order_id)
        .values(**change)
        .returning(_orders.c.id)
        .cte("changed")
    )
    columns = ["status", "reason", "event_id", "at"]
    values = [bindparam(f"h_{c}", entry[c], type_=_history.c[c].type) for c in columns]
    statement = (
        insert(_history)
        .from_select(["order_id", *columns], select(changed.c.id, *values))
        .add_cte(changed)
    )
    session.execute(statement)
