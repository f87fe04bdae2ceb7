"""The tables behind reliable events, in every service database that uses them.

* ``outbox_events``: an event is a row written in the same transaction as the
  change it announces; the relay (``services.chassis.outbox``) publishes it
  with publisher confirms and marks it sent. Nothing is published for a
  rolled-back change, and nothing committed is lost.
* ``inbox_events``: one row per (event id, handler) already handled, written
  in the handler's own transaction, so a redelivered or duplicated event has
  no second effect.

A service's ``models.py`` calls ``OutboxEvent, InboxEvent = event_tables(Base)``
and its first migration calls ``create_event_tables(op)``.
"""

import datetime
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

OUTBOX_TABLE = "outbox_events"
INBOX_TABLE = "inbox_events"
_UNSENT_INDEX = "ix_outbox_events_unsent"


def event_tables(Base):
    """Map the outbox and inbox tables on ``Base``; returns ``(OutboxEvent, InboxEvent)``."""

    class OutboxEvent(Base):
        __tablename__ = OUTBOX_TABLE
        __table_args__ = (
            sa.Index(_UNSENT_INDEX, "seq", postgresql_where=sa.text("published_at IS NULL")),
        )

        seq: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
        event_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, unique=True)
        # The routing key: the event name without the service ("order_created").
        event_type: Mapped[str] = mapped_column(sa.String(100), nullable=False)
        envelope: Mapped[dict] = mapped_column(JSONB, nullable=False)
        # AMQP headers captured at dispatch: the trace context, the call id stack.
        headers: Mapped[dict] = mapped_column(JSONB, nullable=False, default=dict)
        created_at: Mapped[datetime.datetime] = mapped_column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        )
        published_at: Mapped[datetime.datetime | None] = mapped_column(
            sa.DateTime(timezone=True), nullable=True
        )

    class InboxEvent(Base):
        __tablename__ = INBOX_TABLE
        __table_args__ = (sa.Index("ix_inbox_events_processed_at", "processed_at"),)

        event_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
        # "<service>.<method>": one event may be handled by several handlers.
        consumer: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
        event_type: Mapped[str] = mapped_column(sa.String(150), nullable=False)
        processed_at: Mapped[datetime.datetime] = mapped_column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        )

    Base.agora_outbox = OutboxEvent
    Base.agora_inbox = InboxEvent
    return OutboxEvent, InboxEvent


def create_event_tables(op):
    """Create both tables in a migration (``op`` is ``alembic.op``)."""
    op.create_table(
        OUTBOX_TABLE,
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("event_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("envelope", JSONB(), nullable=False),
        sa.Column("headers", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        _UNSENT_INDEX,
        OUTBOX_TABLE,
        ["seq"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        INBOX_TABLE,
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("event_type", sa.String(150), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    op.create_index("ix_inbox_events_processed_at", INBOX_TABLE, ["processed_at"])


def drop_event_tables(op):
    op.drop_index("ix_inbox_events_processed_at", table_name=INBOX_TABLE)
    op.drop_table(INBOX_TABLE)
    op.drop_index(_UNSENT_INDEX, table_name=OUTBOX_TABLE)
    op.drop_table(OUTBOX_TABLE)
