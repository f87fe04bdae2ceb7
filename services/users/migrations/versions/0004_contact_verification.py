"""Verified email and phone, and the pending verification secrets (hashed).

Existing users keep their contacts unverified: they get no notifications until
they prove them (or an administrator marks them verified, as the demo seed does).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("email_verified_at", sa.DateTime(timezone=True)))
    op.add_column("users", sa.Column("phone_verified_at", sa.DateTime(timezone=True)))
    op.create_table(
        "verifications",
        sa.Column(
            "user_id",
            sa.Uuid(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("channel", sa.String(10), primary_key=True),
        sa.Column("target", sa.String(254), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('email', 'phone')", name="ck_verifications_channel"),
    )
    op.create_index("ix_verifications_secret_hash", "verifications", ["secret_hash"], unique=True)


def downgrade():
    op.drop_index("ix_verifications_secret_hash", table_name="verifications")
    op.drop_table("verifications")
    op.drop_column("users", "phone_verified_at")
    op.drop_column("users", "email_verified_at")
