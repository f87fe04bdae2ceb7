"""An optional phone number (E.164) per user, for text messages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("phone", sa.String(16), nullable=True))


def downgrade():
    op.drop_column("users", "phone")
