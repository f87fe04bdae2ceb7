"""Create payments, refunds, disputes, receipts, the receipt number sequence, the
simulated processor's ledger and the event tables.

Revision ID: 0001
Revises:
Create Date: 2024-01-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.chassis.events import create_event_tables, drop_event_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_STATUSES = ("pending", "succeeded", "failed", "refunded", "partially_refunded", "voided")
_UNCHARGED = ("pending", "failed", "voided")
_DISPUTE_STATUSES = ("open", "won", "lost")


def _in(column, values):
    return "{} IN ({})".format(column, ", ".join(f"'{v}'" for v in values))


def _timestamp(name, nullable=False, **kwargs):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, **kwargs)


def upgrade():
    create_event_tables(op)

    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        # Null only for a voided tombstone (the order closed before any request).
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("failure_code", sa.String(32), nullable=True),
        sa.Column("failure_reason", sa.String(500), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("provider_charge_id", sa.String(100), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.UniqueConstraint("order_id", name="uq_payments_order_id"),
        sa.CheckConstraint(_in("status", _STATUSES), name="ck_payments_status"),
        sa.CheckConstraint("amount >= 0", name="ck_payments_amount"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_payments_currency"),
        sa.CheckConstraint("(amount IS NULL) = (currency IS NULL)", name="ck_payments_money"),
        sa.CheckConstraint("amount IS NOT NULL OR status = 'voided'", name="ck_payments_tombstone"),
        sa.CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= coalesce(amount, 0)",
            name="ck_payments_refunded_amount",
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_payments_attempts"),
        sa.CheckConstraint(
            "provider_charge_id IS NOT NULL OR " + _in("status", _UNCHARGED),
            name="ck_payments_charged",
        ),
        sa.CheckConstraint(
            "(failure_code IS NOT NULL) = (status = 'failed')", name="ck_payments_failure"
        ),
    )
    op.create_index("ix_payments_user_id", "payments", ["user_id"])

    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("payment_id", sa.Uuid(), sa.ForeignKey("payments.id"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("idempotency_key", sa.String(300), nullable=True),
        sa.Column("provider_refund_id", sa.String(100), nullable=False),
        _timestamp("created_at"),
        sa.UniqueConstraint(
            "payment_id", "idempotency_key", name="uq_refunds_payment_id_idempotency_key"
        ),
        sa.CheckConstraint("amount > 0", name="ck_refunds_amount"),
    )

    op.create_table(
        "disputes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("payment_id", sa.Uuid(), sa.ForeignKey("payments.id"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _timestamp("created_at"),
        _timestamp("resolved_at", nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_disputes_amount"),
        sa.CheckConstraint(_in("status", _DISPUTE_STATUSES), name="ck_disputes_status"),
        sa.CheckConstraint(
            "(resolved_at IS NULL) = (status = 'open')", name="ck_disputes_resolved_at"
        ),
    )
    op.create_index("ix_disputes_payment_id", "disputes", ["payment_id"])
    op.create_index(
        "uq_disputes_open_payment_id",
        "disputes",
        ["payment_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )

    op.execute(sa.schema.CreateSequence(sa.Sequence("receipt_number_seq", start=1)))
    op.create_table(
        "receipts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("payment_id", sa.Uuid(), sa.ForeignKey("payments.id"), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        _timestamp("issued_at"),
        sa.UniqueConstraint("payment_id", name="uq_receipts_payment_id"),
        sa.UniqueConstraint("number", name="uq_receipts_number"),
    )

    # The simulated processor's own ledger (services/billing/provider.py).
    op.create_table(
        "simulated_charges",
        sa.Column("charge_id", sa.String(100), primary_key=True),
        sa.Column("idempotency_key", sa.String(300), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("token", sa.String(255), nullable=False),
        _timestamp("created_at", server_default=sa.func.now()),
        sa.UniqueConstraint("idempotency_key", name="simulated_charges_idempotency_key_key"),
    )
    op.create_table(
        "simulated_refunds",
        sa.Column("refund_id", sa.String(100), primary_key=True),
        sa.Column("idempotency_key", sa.String(300), nullable=False),
        sa.Column("charge_id", sa.String(100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _timestamp("created_at", server_default=sa.func.now()),
        sa.UniqueConstraint("idempotency_key", name="simulated_refunds_idempotency_key_key"),
    )
    op.create_index("ix_simulated_refunds_charge_id", "simulated_refunds", ["charge_id"])


def downgrade():
    op.drop_index("ix_simulated_refunds_charge_id", table_name="simulated_refunds")
    op.drop_table("simulated_refunds")
    op.drop_table("simulated_charges")
    op.drop_table("receipts")
    op.execute(sa.schema.DropSequence(sa.Sequence("receipt_number_seq")))
    op.drop_index("uq_disputes_open_payment_id", table_name="disputes")
    op.drop_index("ix_disputes_payment_id", table_name="disputes")
    op.drop_table("disputes")
    op.drop_table("refunds")
    op.drop_index("ix_payments_user_id", table_name="payments")
    op.drop_table("payments")
    drop_event_tables(op)
