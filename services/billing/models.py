"""Tables of the billing service (its own database), and the queries on them.

One payment per order (``payments.order_id`` is unique). Every change to a
payment, its refunds and its disputes happens with the payment row locked
(``lock_payment*``), so a charge, a refund and the closing of the order are
serialized per payment. The simulated processor's ledger lives in this database
too, but belongs to the processor (``provider.py``), not to these models.
"""

import datetime
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Sequence,
    String,
    UniqueConstraint,
    Uuid,
    bindparam,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.billing import domain
from services.chassis.events import event_tables


class Base(DeclarativeBase):
    pass


OutboxEvent, InboxEvent = event_tables(Base)

REFUND_KEY_CONSTRAINT = "uq_refunds_payment_id_idempotency_key"
RECEIPT_NUMBERS = Sequence("receipt_number_seq", start=1, metadata=Base.metadata)


def _timestamp(nullable=False):
    return mapped_column(DateTime(timezone=True), nullable=nullable)


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Payment(Base):
    """A charge for one order. ``amount`` is null only for a voided tombstone: an order
    that closed before anyone asked billing to charge it."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("order_id", name="uq_payments_order_id"),
        CheckConstraint(_in("status", domain.STATUSES), name="ck_payments_status"),
        CheckConstraint("amount >= 0", name="ck_payments_amount"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_payments_currency"),
        CheckConstraint("(amount IS NULL) = (currency IS NULL)", name="ck_payments_money"),
        CheckConstraint("amount IS NOT NULL OR status = 'voided'", name="ck_payments_tombstone"),
        CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= coalesce(amount, 0)",
            name="ck_payments_refunded_amount",
        ),
        CheckConstraint("attempts >= 0", name="ck_payments_attempts"),
        CheckConstraint(
            "provider_charge_id IS NOT NULL OR "
            + _in("status", (domain.PENDING, domain.FAILED, domain.VOIDED)),
            name="ck_payments_charged",
        ),
        CheckConstraint(
            "(failure_code IS NOT NULL) = (status = 'failed')", name="ck_payments_failure"
        ),
        Index("ix_payments_user_id", "user_id"),
        # list_payments: newest first, keyset on (created_at, id); by status too.
        Index("ix_payments_created", text("created_at DESC"), text("id DESC")),
        Index("ix_payments_status_created", "status", text("created_at DESC"), text("id DESC")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    failure_code: Mapped[str | None] = mapped_column(String(32))
    failure_reason: Mapped[str | None] = mapped_column(String(domain.REASON_MAX))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    provider_charge_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime.datetime] = _timestamp()
    updated_at: Mapped[datetime.datetime] = _timestamp()


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        # A key refunds once per payment (NULL keys never collide).
        UniqueConstraint("payment_id", "idempotency_key", name=REFUND_KEY_CONSTRAINT),
        CheckConstraint("amount > 0", name="ck_refunds_amount"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments.id"), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(String(domain.REASON_MAX), nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(300))
    provider_refund_id: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime.datetime] = _timestamp()


class Dispute(Base):
    __tablename__ = "disputes"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_disputes_amount"),
        CheckConstraint(_in("status", domain.DISPUTE_STATUSES), name="ck_disputes_status"),
        CheckConstraint(
            "(resolved_at IS NULL) = (status = 'open')", name="ck_disputes_resolved_at"
        ),
        Index("ix_disputes_payment_id", "payment_id"),
        # At most one open dispute per payment.
        Index(
            "uq_disputes_open_payment_id",
            "payment_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments.id"), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(String(domain.REASON_MAX), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime.datetime] = _timestamp()
    resolved_at: Mapped[datetime.datetime | None] = _timestamp(nullable=True)


class Receipt(Base):
    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("payment_id", name="uq_receipts_payment_id"),
        UniqueConstraint("number", name="uq_receipts_number"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments.id"), nullable=False)
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    number: Mapped[str] = mapped_column(String(32), nullable=False)
    # {"items": [LINE], "amount": Money, "user_id": str}
    body: Mapped[dict] = mapped_column(JSONB, nullable=False)
    issued_at: Mapped[datetime.datetime] = _timestamp()


# --- payments ------------------------------------------------------------------


def _locked(query):
    return query.with_for_update().execution_options(populate_existing=True)


# The columns of a new payment (domain.new_payment, domain.tombstone). Text,
# because SQLAlchemy compiles a PostgreSQL INSERT ... ON CONFLICT construct anew
# at every execution.
_NEW_PAYMENT_COLUMNS = (
    "id order_id user_id amount currency status refunded_amount attempts created_at updated_at"
).split()
_CLAIM_PAYMENT = (
    text(
        f"""
        INSERT INTO payments ({", ".join(_NEW_PAYMENT_COLUMNS)})
        VALUES ({", ".join(f":{name}" for name in _NEW_PAYMENT_COLUMNS)})
        ON CONFLICT DO NOTHING
        RETURNING {", ".join(column.name for column in Payment.__table__.c)}
        """
    )
    .bindparams(bindparam("id", type_=Uuid), bindparam("order_id", type_=Uuid))
    .bindparams(bindparam("user_id", type_=Uuid))
    .columns(*Payment.__table__.c)
)


def claim_payment(session, values):
    """Insert the payment row for ``values["order_id"]`` unless the order has one, then
    lock the order's row (this one or the earlier one) until the transaction ends.

    Returns ``(payment, created)``. Two transactions racing here serialize: the
    second's insert waits for the first, then does nothing and locks its row.

    The conflict has no target on purpose: the id is derived from the order id, so
    a racing insert collides on the primary key and on ``order_id`` alike, and
    Postgres raises for a conflict on any unique index that is not an arbiter."""
    # The new row comes back as the Payment, so the usual case (the first request
    # for the order) needs no second query to load and lock it.
    payment = session.scalars(select(Payment).from_statement(_CLAIM_PAYMENT), values).one_or_none()
    if payment is not None:
        return payment, True
    payment = session.scalars(
        _locked(select(Payment).where(Payment.order_id == values["order_id"]))
    ).one()
    return payment, False


def find_payment(session, payment_id, for_update=False):
    """The payment with this id (any spelling of a UUID), or None."""
    canonical = domain.canonical_id(payment_id)
    if canonical is None:
        return None
    query = select(Payment).where(Payment.id == uuid.UUID(canonical))
    return session.scalars(_locked(query) if for_update else query).one_or_none()


def find_payment_for_order(session, order_id):
    canonical = domain.canonical_id(order_id)
    if canonical is None:
        return None
    query = select(Payment).where(Payment.order_id == uuid.UUID(canonical))
    return session.scalars(query).one_or_none()


def payments_page(session, limit, after=None, status=None):
    """Up to ``limit`` payments, newest first, after ``(created_at, id)``; only
    ``status`` ones if given. Tombstones (closed before any charge) are not payments."""
    query = select(Payment).where(Payment.amount.is_not(None))
    if status is not None:
        query = query.where(Payment.status == status)
    if after is not None:
        query = query.where(tuple_(Payment.created_at, Payment.id) < tuple_(*after))
    query = query.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit)
    return list(session.scalars(query))


# --- refunds, disputes, receipts -------------------------------------------------


def _grouped(rows, payment_ids):
    grouped = {payment_id: [] for payment_id in payment_ids}
    for row in rows:
        grouped[row.payment_id].append(row)
    return grouped


def parts_of(session, payment_ids):
    """``{payment_id: (refunds, disputes, receipt)}`` in three queries, for a page."""
    ids = list(payment_ids)
    if not ids:
        return {}
    refunds = _grouped(
        session.scalars(
            select(Refund).where(Refund.payment_id.in_(ids)).order_by(Refund.created_at, Refund.id)
        ),
        ids,
    )
    disputes = _grouped(
        session.scalars(
            select(Dispute)
            .where(Dispute.payment_id.in_(ids))
            .order_by(Dispute.created_at, Dispute.id)
        ),
        ids,
    )
    receipts = {
        r.payment_id: r for r in session.scalars(select(Receipt).where(Receipt.payment_id.in_(ids)))
    }
    return {i: (refunds[i], disputes[i], receipts.get(i)) for i in ids}


def refunds_of(session, payment_id):
    query = select(Refund).where(Refund.payment_id == payment_id)
    return list(session.scalars(query.order_by(Refund.created_at, Refund.id)))


def refund_by_key(session, payment_id, key):
    query = select(Refund).where(Refund.payment_id == payment_id, Refund.idempotency_key == key)
    return session.scalars(query).one_or_none()


def disputes_of(session, payment_id):
    query = select(Dispute).where(Dispute.payment_id == payment_id)
    return list(session.scalars(query.order_by(Dispute.created_at, Dispute.id)))


def find_dispute(session, payment_id, dispute_id):
    canonical = domain.canonical_id(dispute_id)
    if canonical is None:
        return None
    query = select(Dispute).where(
        Dispute.id == uuid.UUID(canonical), Dispute.payment_id == payment_id
    )
    return session.scalars(query).one_or_none()


def receipt_of(session, payment_id):
    return session.scalars(select(Receipt).where(Receipt.payment_id == payment_id)).one_or_none()


def next_receipt_seq(session):
    """The next receipt number from the sequence (gaps after rollbacks are fine)."""
    return session.scalar(select(RECEIPT_NUMBERS.next_value()))
