"""Create stock levels, reservations, warehouse syncs and the event tables.

Revision ID: 0001
Revises:
Create Date: 2024-01-01
"""

import sqlalchemy as sa
from alembic import op

from services.chassis.events import create_event_tables, drop_event_tables
from services.chassis.schemas import SKU_PATTERN

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

WAREHOUSE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"


def _timestamp(name, nullable=False):
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=None if nullable else sa.func.now(),
    )


def upgrade():
    op.create_table(
        "stock_levels",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("warehouse", sa.String(32), primary_key=True),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False, server_default="0"),
        _timestamp("updated_at"),
        # available = on_hand - reserved can never be negative.
        sa.CheckConstraint(
            "reserved >= 0 AND on_hand >= reserved", name="ck_stock_levels_quantities"
        ),
        sa.CheckConstraint(f"sku ~ '{SKU_PATTERN}'", name="ck_stock_levels_sku"),
        sa.CheckConstraint(f"warehouse ~ '{WAREHOUSE_PATTERN}'", name="ck_stock_levels_warehouse"),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _timestamp("expires_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.UniqueConstraint("order_id", name="uq_reservations_order_id"),
        sa.CheckConstraint(
            "status IN ('active', 'committed', 'released', 'expired')",
            name="ck_reservations_status",
        ),
        sa.CheckConstraint(
            "status <> 'active' OR expires_at IS NOT NULL", name="ck_reservations_expires_at"
        ),
    )
    # The expiry sweep walks active reservations by deadline.
    op.create_index(
        "ix_reservations_active_expires_at",
        "reservations",
        ["expires_at"],
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "reservation_lines",
        sa.Column(
            "reservation_id",
            sa.Uuid(),
            sa.ForeignKey("reservations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("warehouse", sa.String(32), primary_key=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sku", "warehouse"],
            ["stock_levels.sku", "stock_levels.warehouse"],
            name="fk_reservation_lines_stock",
        ),
        sa.CheckConstraint("quantity > 0", name="ck_reservation_lines_quantity"),
    )
    op.create_table(
        "stock_syncs",
        sa.Column("sync_id", sa.String(100), primary_key=True),
        sa.Column("warehouse", sa.String(32), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False, server_default="0"),
        _timestamp("created_at"),
    )
    create_event_tables(op)


def downgrade():
    drop_event_tables(op)
    op.drop_table("stock_syncs")
    op.drop_table("reservation_lines")
    op.drop_index("ix_reservations_active_expires_at", table_name="reservations")
    op.drop_table("reservations")
    op.drop_table("stock_levels")
