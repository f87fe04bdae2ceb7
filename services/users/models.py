"""Tables of the users service (its own database), and the few queries on them."""

import uuid

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
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
    # When the current email / phone was proven (None: not yet, or changed since).
    email_verified_at = mapped_column(DateTime(timezone=True), nullable=True)
    phone_verified_at = mapped_column(DateTime(timezone=True), nullable=True)
    created_at = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    # Named here and in the migration alike, so a violation is recognised by
    # ``is_unique_violation(exc, EMAIL_UNIQUE)``.
    __table_args__ = (UniqueConstraint("email", name=EMAIL_UNIQUE),)


class Verification(Base):
    """The one pending secret per user and channel (``email`` or ``phone``), hashed."""

    __tablename__ = "verifications"
    __table_args__ = (
        CheckConstraint("channel IN ('email', 'phone')", name="ck_verifications_channel"),
        # An email link is looked up by its token's hash.
        Index("ix_verifications_secret_hash", "secret_hash", unique=True),
    )

    user_id = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    # The address or number the secret proves (a later change makes it stale).
    target: Mapped[str] = mapped_column(String(254), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at = mapped_column(DateTime(timezone=True), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at = mapped_column(DateTime(timezone=True), nullable=False)


def get_user(session, user_id):
    """The user with id ``user_id`` (a UUID), or None."""
    return session.get(User, user_id)


def find_by_email(session, email):
    """The user whose stored (normalized) email is ``email``, or None."""
    return session.scalars(select(User).where(User.email == email)).one_or_none()


def put_verification(session, user_id, channel, target, secret_hash, expires_at, now):
    """Store a new pending secret for (user, channel), replacing the previous one."""
    values = {
        "user_id": user_id,
        "channel": channel,
        "target": target,
        "secret_hash": secret_hash,
        "expires_at": expires_at,
        "attempts": 0,
        "created_at": now,
    }
    statement = insert(Verification).values(values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[Verification.user_id, Verification.channel],
            set_={k: statement.excluded[k] for k in values if k not in ("user_id", "channel")},
        )
    )


def find_email_verification(session, secret_hash):
    """The pending email verification whose token hashes to ``secret_hash``, locked."""
    return session.scalars(
        select(Verification)
        .where(Verification.channel == "email", Verification.secret_hash == secret_hash)
        .with_for_update()
    ).one_or_none()


def count_attempt(session, user_id, channel):
    """Count one try against the pending secret (before checking it): the row, or None."""
    return session.scalars(
        update(Verification)
        .where(Verification.user_id == user_id, Verification.channel == channel)
        .values(attempts=Verification.attempts + 1)
        .returning(Verification)
        .execution_options(synchronize_session=False)
    ).one_or_none()


def drop_verification(session, user_id, channel):
    session.execute(
        delete(Verification)
        .where(Verification.user_id == user_id, Verification.channel == channel)
        .execution_options(synchronize_session=False)
    )
