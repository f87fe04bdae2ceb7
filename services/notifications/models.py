"""Tables of the notifications service (its own database), and the queries on them."""

import datetime
import uuid

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    bindparam,
    exists,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.chassis.events import event_tables
from services.notifications import domain


class Base(DeclarativeBase):
    pass


OutboxEvent, InboxEvent = event_tables(Base)

EVENT_CHANNEL_CONSTRAINT = "uq_notifications_event_channel"


class Notification(Base):
    """One message to one user on one channel, caused by one event."""

    __tablename__ = "notifications"
    __table_args__ = (
        # One notification per event and channel, however often the event arrives.
        UniqueConstraint("event_id", "channel", name=EVENT_CHANNEL_CONSTRAINT),
        CheckConstraint("channel IN ('email', 'sms')", name="ck_notifications_channel"),
        CheckConstraint(
            "status IN ('queued', 'sent', 'failed', 'skipped', 'suppressed')",
            name="ck_notifications_status",
        ),
        CheckConstraint("attempts >= 0", name="ck_notifications_attempts"),
        # list_notifications: a user's rows newest first, keyset on (created_at, id).
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        # The per-recipient cap: one recipient's recent rows.
        Index("ix_notifications_recipient_created", "channel", "recipient", "created_at"),
        # The sender: queued rows by due time.
        Index(
            "ix_notifications_due",
            "next_attempt_at",
            postgresql_where=text("status = 'queued'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    channel: Mapped[str] = mapped_column(String(10), nullable=False)
    template: Mapped[str] = mapped_column(String(50), nullable=False)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    event_type: Mapped[str] = mapped_column(String(150), nullable=False)
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(300), nullable=True)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # When the sender may (re)try; NULL once sent or failed.
    next_attempt_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


def event_recorded(session, event_id):
    """True if notifications for this event exist already (a redelivery)."""
    return session.scalar(select(exists().where(Notification.event_id == event_id)))


# Text, because SQLAlchemy compiles a PostgreSQL INSERT ... ON CONFLICT construct
# anew at every execution (a multi-row VALUES on the mapped class was a fifth of
# this service's CPU per event). An event makes one or two rows.
_COLUMNS = [column.name for column in Notification.__table__.c]
# What a row may leave out: the column's default.
_DEFAULTS = {"attempts": 0}
_INSERT_NOTIFICATION = text(
    f"""
    INSERT INTO notifications ({", ".join(_COLUMNS)})
    VALUES ({", ".join(f":{name}" for name in _COLUMNS)})
    ON CONFLICT ON CONSTRAINT {EVENT_CHANNEL_CONSTRAINT} DO NOTHING
    RETURNING id
    """
).bindparams(*(bindparam(column.name, type_=column.type) for column in Notification.__table__.c))


def insert_notifications(session, rows):
    """Insert ``rows``, skipping (event, channel) pairs that exist; the ids inserted."""
    inserted = []
    for row in rows:
        values = {name: row.get(name, _DEFAULTS.get(name)) for name in _COLUMNS}
        inserted += session.scalars(_INSERT_NOTIFICATION, values)
    return inserted


# Rows that are (or were going to be) messages to their recipient.
_COUNTED = (domain.QUEUED, domain.SENT, domain.FAILED)


def recent_per_recipient(session, keys, since):
    """``{recipient_key: rows since ``since``}`` for the ``(channel, recipient)`` keys.

    Takes a transaction-scoped advisory lock per recipient first (in one order,
    so two handlers cannot deadlock): until this transaction ends, no other
    handler counts or adds messages to them, so the cap holds under concurrency.
    """
    keys = sorted(set(keys))
    if not keys:
        return {}
    for channel, recipient in keys:
        session.execute(
            select(func.pg_advisory_xact_lock(func.hashtext(f"notify:{channel}:{recipient}")))
        )
    counts = {key: 0 for key in keys}
    # Recipients are stored as users normalizes them (emails lowercased).
    rows = session.execute(
        select(Notification.channel, Notification.recipient, func.count())
        .where(
            tuple_(Notification.channel, Notification.recipient).in_(keys),
            Notification.created_at >= since,
            Notification.status.in_(_COUNTED),
        )
        .group_by(Notification.channel, Notification.recipient)
    )
    for channel, recipient, count in rows:
        counts[(channel, recipient)] = count
    return counts


def get_notifications(session, ids):
    if not ids:
        return []
    return list(session.scalars(select(Notification).where(Notification.id.in_(ids))))


def _due(now):
    return (Notification.status == domain.QUEUED) & (Notification.next_attempt_at <= now)


def claim_due(session, now, limit, until, max_attempts):
    """Take up to ``limit`` due queued rows for sending: ``attempts += 1`` and
    ``next_attempt_at = until``, so no other sender picks them meanwhile. Rows
    another sender has locked are skipped. Returns ``(id, attempts)`` pairs;
    the caller commits at once and sends after.
    """
    ids = list(
        session.scalars(
            select(Notification.id)
            .where(_due(now), Notification.attempts < max_attempts)
            .order_by(Notification.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    claimed = session.execute(
        update(Notification)
        .where(Notification.id.in_(ids))
        .values(attempts=Notification.attempts + 1, next_attempt_at=until, updated_at=now)
        .returning(Notification.id, Notification.attempts)
        .execution_options(synchronize_session=False)
    )
    return [(row.id, row.attempts) for row in claimed]


def next_due(session):
    """When the earliest queued row is due (a retry, or a claim whose sender may
    have died), or None if none is queued."""
    return session.scalar(
        select(func.min(Notification.next_attempt_at)).where(Notification.status == domain.QUEUED)
    )


def exhausted_due(session, now, max_attempts, limit):
    """Due queued rows whose tries are used up (a sender died mid-send), locked."""
    return list(
        session.scalars(
            select(Notification)
            .where(_due(now), Notification.attempts >= max_attempts)
            .order_by(Notification.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def record_outcome(session, notification_id, attempts, outcome, now, scrub=False):
    """Store a try's outcome if the row is still the one this sender claimed.

    False if it is not (still queued with the same attempt count): another sender
    took it over after the claim margin, and its outcome counts instead.
    ``scrub`` replaces the body (a verification secret) once it is final.
    """
    extra = {"body": domain.SCRUBBED_BODY} if scrub and outcome.status != domain.QUEUED else {}
    result = session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.status == domain.QUEUED,
            Notification.attempts == attempts,
        )
        .values(
            status=outcome.status,
            next_attempt_at=outcome.next_attempt_at,
            last_error=outcome.last_error,
            sent_at=outcome.sent_at,
            updated_at=now,
            **extra,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def user_notifications(session, user_id, after, limit):
    """Up to ``limit`` of a user's notifications, newest first, after ``(created_at, id)``."""
    query = select(Notification).where(Notification.user_id == user_id)
    if after is not None:
        query = query.where(tuple_(Notification.created_at, Notification.id) < tuple_(*after))
    query = query.order_by(Notification.created_at.desc(), Notification.id.desc())
    return list(session.scalars(query.limit(limit)))
