"""Create the orders, order_lines and order_history tables, and the event tables.

Revision ID: 0001
Revises:
Create Date: 2024-01-01
"""

import sqlalchemy as sa
from alembic import op

from services.chassis.events import create_event_tables, drop_event_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_STATUSES = (
    "pending",
    "reserved",
    "paid",
    "confirmed",
    "rejected",
    "payment_failed",
    "cancelled",
    "expired",
)
_OPEN = ("pending", "reserved", "paid", "payment_failed")


def _in(statuses):
    return "status IN ({})".format(", ".join(f"'{s}'" for s in statuses))


def _timestamp(name, **kwargs):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, **kwargs)


def upgrade():
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_token", sa.String(200), nullable=True),
        sa.Column("payment_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        _timestamp("deadline_at"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_id_idempotency_key"),
        sa.CheckConstraint(_in(_STATUSES), name="ck_orders_status"),
        sa.CheckConstraint("total_amount >= 0", name="ck_orders_total_amount"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_orders_currency"),
    )
    # "My orders", newest first (keyset on created_at, id).
    op.create_index(
        "ix_orders_user_created",
        "orders",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    # The sweep walks open orders by deadline.
    op.create_index(
        "ix_orders_open_deadline",
        "orders",
        ["deadline_at"],
        postgresql_where=sa.text(_in(_OPEN)),
    )
    op.create_table(
        "order_lines",
        sa.Column(
            "order_id",
            sa.Uuid(),
            sa.ForeignKey("orders.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line_no", sa.Integer(), primary_key=True),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_order_lines_quantity"),
        sa.CheckConstraint("unit_price_amount >= 0", name="ck_order_lines_unit_price_amount"),
    )
    op.create_table(
        "order_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column(
            "order_id",
            sa.Uuid(),
            sa.ForeignKey("orders.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        _timestamp("at"),
    )
    op.create_index("ix_order_history_order_id", "order_history", ["order_id", "id"])
    op.create_index(
        "uq_order_history_event",
        "order_history",
        ["order_id", "event_id"],
        unique=True,
        postgresql_where=sa.text("event_id IS NOT NULL"),
    )
    create_event_tables(op)


def downgrade():
    drop_event_tables(op)
    op.drop_index("uq_order_history_event", table_name="order_history")
    op.drop_index("ix_order_history_order_id", table_name="order_history")
    op.drop_table("order_history")
    op.drop_table("order_lines")
    op.drop_index("ix_orders_open_deadline", table_name="orders")
    op.drop_index("ix_orders_user_created", table_name="orders")
    op.drop_table("orders")
