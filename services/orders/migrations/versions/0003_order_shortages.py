"""A rejected order keeps what inventory could not reserve, for the order view.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("shortages", JSONB(), nullable=True))


def downgrade():
    op.drop_column("orders", "shortages")
