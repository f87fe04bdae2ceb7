"""Skipped (unverified contact) and suppressed (over the hourly cap) notifications,
and an index for counting one recipient's recent messages.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_constraint("ck_notifications_status", "notifications", type_="check")
    op.create_check_constraint(
        "ck_notifications_status",
        "notifications",
        sa.text("status IN ('queued', 'sent', 'failed', 'skipped', 'suppressed')"),
    )
    op.create_index(
        "ix_notifications_recipient_created",
        "notifications",
        ["channel", "recipient", "created_at"],
    )


def downgrade():
    op.drop_index("ix_notifications_recipient_created", table_name="notifications")
    op.drop_constraint("ck_notifications_status", "notifications", type_="check")
    op.execute(
        "UPDATE notifications SET status = 'failed' WHERE status IN ('skipped', 'suppressed')"
    )
    op.create_check_constraint(
        "ck_notifications_status",
        "notifications",
        sa.text("status IN ('queued', 'sent', 'failed')"),
    )
