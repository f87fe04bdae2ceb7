"""The catalog's SKUs as inventory knows them: stock only for a product's SKU.

Fed by ``catalog.product_created``; a SKU not yet heard of (a product created
before this table, or whose event is still on its way) is looked up with
``catalog.known_skus`` when stock is first set for it. Nothing is copied from
``stock_levels``: a SKU with stock but no product must not become known.

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
    op.create_table(
        "catalog_skus",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column(
            "learned_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade():
    op.drop_table("catalog_skus")
