"""Indexes for the payments list of billing administrators (GET /v1/payments):
newest first, keyset on (created_at, id), all payments or one status.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_payments_created", "payments", [sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_index(
        "ix_payments_status_created",
        "payments",
        ["status", sa.text("created_at DESC"), sa.text("id DESC")],
    )


def downgrade():
    op.drop_index("ix_payments_status_created", table_name="payments")
    op.drop_index("ix_payments_created", table_name="payments")
