"""Product images: the keys of each image's stored renditions, in display order.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "product_images",
        sa.Column(
            "product_id",
            sa.Uuid(),
            sa.ForeignKey("products.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("image_id", sa.String(32), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("list_key", sa.String(128), nullable=False),
        sa.Column("detail_key", sa.String(128), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("position >= 0", name="ck_product_images_position"),
        sa.CheckConstraint("width > 0 AND height > 0", name="ck_product_images_size"),
    )
    # remove_product_image asks whether another product still shows the same image.
    op.create_index("ix_product_images_image_id", "product_images", ["image_id"])


def downgrade():
    op.drop_index("ix_product_images_image_id", table_name="product_images")
    op.drop_table("product_images")
