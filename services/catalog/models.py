"""Tables of the catalog service (its own database), and the queries on them."""

import datetime
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.catalog import domain
from services.chassis.events import event_tables


class Base(DeclarativeBase):
    pass


OutboxEvent, InboxEvent = event_tables(Base)


SKU_CONSTRAINT = "uq_products_sku"


class Product(Base):
    """The public id is a UUID; ``seq`` is internal, gives the listing order and the cursor."""

    __tablename__ = "products"
    __table_args__ = (
        # Named, so a duplicate SKU is told apart from other unique violations.
        UniqueConstraint("sku", name=SKU_CONSTRAINT),
        UniqueConstraint("seq", name="uq_products_seq"),
        CheckConstraint("price_amount >= 0", name="ck_products_price_amount"),
        CheckConstraint("price_currency ~ '^[A-Z]{3}$'", name="ck_products_price_currency"),
        Index("ix_products_active_seq", "seq", postgresql_where=text("active")),
    )
    # RETURNING fills seq on insert instead of a second SELECT.
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    price_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    price_currency: Mapped[str] = mapped_column(String(3), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    # In display order (the first is the main image). "selectin": a list page
    # loads every product's images in one more query, not one per product.
    images: Mapped[list["ProductImage"]] = relationship(
        order_by="ProductImage.position",
        lazy="selectin",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class ProductImage(Base):
    """An image of a product: the keys of its stored renditions (the objects
    live in the gateway's object store; the catalog never sees their bytes)."""

    __tablename__ = "product_images"
    __table_args__ = (
        CheckConstraint("position >= 0", name="ck_product_images_position"),
        CheckConstraint("width > 0 AND height > 0", name="ck_product_images_size"),
        # Whether any product still refers to an image's objects.
        Index("ix_product_images_image_id", "image_id"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    list_key: Mapped[str] = mapped_column(String(128), nullable=False)
    detail_key: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


def image_in_use(session, image_id):
    """True if some product still has the image ``image_id`` (its objects are shared)."""
    query = select(ProductImage.product_id).where(ProductImage.image_id == image_id).limit(1)
    return session.scalars(query).first() is not None


def find_product(session, product_id, for_update=False):
    """The product with this id (any form of UUID string), or None."""
    canonical = domain.parse_product_id(product_id)
    if canonical is None:
        return None
    query = select(Product).where(Product.id == uuid.UUID(canonical))
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def active_products_after(session, after_seq, limit, q=None, include_inactive=False):
    """Up to ``limit`` active products (any, with ``include_inactive``) with
    seq > ``after_seq``, in seq order."""
    query = select(Product).where(Product.seq > after_seq)
    if not include_inactive:
        query = query.where(Product.active.is_(True))
    if q:
        pattern = domain.like_pattern(q)
        query = query.where(
            or_(
                Product.name.ilike(pattern, escape="\\"),
                Product.description.ilike(pattern, escape="\\"),
                Product.sku.ilike(pattern, escape="\\"),
            )
        )
    return list(session.scalars(query.order_by(Product.seq).limit(limit)))


def existing_skus(session, skus):
    """The SKUs among ``skus`` that a product has (active or not)."""
    if not skus:
        return set()
    return set(session.scalars(select(Product.sku).where(Product.sku.in_(list(skus)))))
