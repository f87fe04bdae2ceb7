"""Tables of the users service (its own database), and the few queries on them."""

import uuid

from sqlalchemy import ARRAY, DateTime, String, UniqueConstraint, Uuid, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.chassis.events import event_tables

EMAIL_UNIQUE = "uq_users_email"


class Base(DeclarativeBase):
    pass


OutboxEvent, InboxEvent = event_tables(Base)


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Always stored normalized (stripped, lowercased), so unique means
    # unique regardless of case.
    email: Mapped[str] = mapped_column(String(254), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    # E.164 (``schemas.PHONE``), for text messages; None when the user gave none.
    phone: Mapped[str | None] = mapped_column(String(16))
    address: Mapped[dict | None] = mapped_column(JSONB)
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)), nullable=False, server_default="{}")
    created_at = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    # Named here and in the migration alike, so a violation is recognised by
    # ``is_unique_violation(exc, EMAIL_UNIQUE)``.
    __table_args__ = (UniqueConstraint("email", name=EMAIL_UNIQUE),)


def get_user(session, user_id):
    """The user with id ``user_id`` (a UUID), or None."""
    return session.get(User, user_id)


def find_by_email(session, email):
    """The user whose stored (normalized) email is ``email``, or None."""
    return session.scalars(select(User).where(User.email == email)).one_or_none()
