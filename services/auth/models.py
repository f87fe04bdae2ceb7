"""Tables of the auth service (its own database), and the queries on them.

Tokens and codes are stored only as the SHA-256 of what was handed out. The
atomic steps (consume a refresh token or a code once, revoke a family, create
the first signing key once) are single conditional statements here, serialized
per family (or for the key ring) by transaction-scoped advisory locks.
"""

import datetime
import uuid

from sqlalchemy import (
    ARRAY,
    Boolean,
    DateTime,
    Index,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.chassis.events import event_tables

CLIENT_PKEY = "pk_oauth_clients"
REFRESH_HASH_UNIQUE = "uq_refresh_tokens_token_hash"
CODE_HASH_UNIQUE = "uq_authorization_codes_code_hash"

# Two-key advisory locks (class, object) in this service's database; they never
# collide with the migrations' single-key lock. Class 1 is the signing-key ring,
# class 2 one token family (object: the hash of its id).
_KEY_RING_LOCK = (1, 0)
_FAMILY_LOCK_CLASS = 2


class Base(DeclarativeBase):
    pass


OutboxEvent, InboxEvent = event_tables(Base)


def _timestamp(nullable=False, **kwargs):
    return mapped_column(DateTime(timezone=True), nullable=nullable, **kwargs)


class OAuthClient(Base):
    __tablename__ = "oauth_clients"
    # Named, so a concurrent create of one id is recognised as a conflict.
    __table_args__ = (PrimaryKeyConstraint("client_id", name=CLIENT_PKEY),)

    client_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    public: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # argon2id of the secret; None for public clients.
    secret_hash: Mapped[str | None] = mapped_column(String(255))
    grant_types: Mapped[list[str]] = mapped_column(
        ARRAY(String(32)), nullable=False, server_default="{}"
    )
    scopes: Mapped[list[str]] = mapped_column(
        ARRAY(String(64)), nullable=False, server_default="{}"
    )
    redirect_uris: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default="{}"
    )
    created_at: Mapped[datetime.datetime] = _timestamp(server_default=func.now())
    updated_at: Mapped[datetime.datetime] = _timestamp(server_default=func.now())


class RefreshToken(Base):
    """One opaque refresh token; a family is the chain of rotations from one grant."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash", name=REFRESH_HASH_UNIQUE),
        Index("ix_refresh_tokens_family_id", "family_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    client_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    issued_at: Mapped[datetime.datetime] = _timestamp()
    expires_at: Mapped[datetime.datetime] = _timestamp()
    used_at: Mapped[datetime.datetime | None] = _timestamp(nullable=True)
    revoked_at: Mapped[datetime.datetime | None] = _timestamp(nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"
    __table_args__ = (
        UniqueConstraint("code_hash", name=CODE_HASH_UNIQUE),
        Index("ix_authorization_codes_family_id", "family_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    client_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    redirect_uri: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    code_challenge: Mapped[str] = mapped_column(String(128), nullable=False)
    code_challenge_method: Mapped[str] = mapped_column(String(16), nullable=False)
    nonce: Mapped[str | None] = mapped_column(String(255))
    # The family of every token issued from this code (revoked on code reuse).
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    created_at: Mapped[datetime.datetime] = _timestamp()
    expires_at: Mapped[datetime.datetime] = _timestamp()
    used_at: Mapped[datetime.datetime | None] = _timestamp(nullable=True)
    # Set when the code's family is revoked, so no token can join it later.
    revoked_at: Mapped[datetime.datetime | None] = _timestamp(nullable=True)


class RevokedAccessToken(Base):
    """An access token revoked by its client (RFC 7009), kept until it would have
    expired anyway: the record the gateway's denylist is rebuilt from."""

    __tablename__ = "revoked_access_tokens"
    __table_args__ = (
        PrimaryKeyConstraint("jti", name="pk_revoked_access_tokens"),
        Index("ix_revoked_access_tokens_expires_at", "expires_at"),
    )

    jti: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime.datetime] = _timestamp()
    revoked_at: Mapped[datetime.datetime] = _timestamp()


class SigningKey(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (
        # The current key is the newest one that is not retired.
        Index("ix_signing_keys_current", "created_at", postgresql_where=text("retired_at IS NULL")),
    )

    kid: Mapped[str] = mapped_column(String(128), primary_key=True)
    # PKCS#8 PEM, encrypted with the configured passphrase.
    private_pem: Mapped[str] = mapped_column(Text, nullable=False)
    public_jwk: Mapped[dict] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime.datetime] = _timestamp()
    retired_at: Mapped[datetime.datetime | None] = _timestamp(nullable=True)


# --- clients -------------------------------------------------------------------


def get_client(session, client_id):
    if not isinstance(client_id, str):
        return None
    return session.get(OAuthClient, client_id)


# --- locks ---------------------------------------------------------------------


def lock_key_ring(session):
    """Serialize key creation and rotation until this transaction ends."""
    cls, obj = _KEY_RING_LOCK
    session.execute(text("SELECT pg_advisory_xact_lock(:cls, :obj)"), {"cls": cls, "obj": obj})


def lock_family(session, family_id):
    """Serialize everything that adds to or revokes one token family until commit.

    Taken before any row lock of the family, always, so that a revocation cannot
    miss a token inserted by a rotation that is committing at the same moment.
    """
    session.execute(
        text("SELECT pg_advisory_xact_lock(:cls, hashtext(:family))"),
        {"cls": _FAMILY_LOCK_CLASS, "family": str(family_id)},
    )


# --- refresh tokens ------------------------------------------------------------


def _find_by_hash(session, hash_column, digest):
    model = hash_column.class_
    query = select(model).where(hash_column == digest)
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def _consume_once(session, hash_column, digest, client_id, now):
    """Mark the row used if it is unused, unrevoked, unexpired and the client's,
    in one conditional UPDATE (two racing callers cannot both win); the row, or None."""
    model = hash_column.class_
    statement = (
        update(model)
        .where(
            hash_column == digest,
            model.client_id == client_id,
            model.used_at.is_(None),
            model.revoked_at.is_(None),
            model.expires_at > now,
        )
        .values(used_at=now)
        .returning(model)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return session.scalars(statement).one_or_none()


def find_refresh_token(session, token_hash):
    return _find_by_hash(session, RefreshToken.token_hash, token_hash)


def consume_refresh_token(session, token_hash, client_id, now):
    """Mark the token used if it is active and the client's; the row, or None."""
    return _consume_once(session, RefreshToken.token_hash, token_hash, client_id, now)


def revoke_family(session, family_id, reason, now):
    """Revoke every active token and code of the family; how many tokens were revoked.

    Call under ``lock_family`` so a token being added concurrently is either
    seen here or refused when it is added.
    """
    tokens = session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount
    codes = session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.family_id == family_id, AuthorizationCode.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return tokens + codes


def revoked_families(session, since):
    """``(family_id, revoked_at)`` of every family revoked after ``since`` (its
    latest revocation): what the gateway's denylist must hold. The database is
    the record; the denylist in Redis is rebuilt from this."""
    tokens = select(RefreshToken.family_id, RefreshToken.revoked_at).where(
        RefreshToken.revoked_at > since
    )
    codes = select(AuthorizationCode.family_id, AuthorizationCode.revoked_at).where(
        AuthorizationCode.revoked_at > since
    )
    both = tokens.union_all(codes).subquery()
    query = select(both.c.family_id, func.max(both.c.revoked_at)).group_by(both.c.family_id)
    return [tuple(row) for row in session.execute(query)]


def record_access_revocation(session, jti, client_id, expires_at, now):
    """Record the revoked ``jti`` once (a second revocation changes nothing)."""
    session.execute(
        pg_insert(RevokedAccessToken)
        .values(jti=jti, client_id=client_id, expires_at=expires_at, revoked_at=now)
        .on_conflict_do_nothing(index_elements=["jti"])
    )


def revoked_access_tokens(session, expired_before):
    """``(jti, expires_at, client_id)`` of revoked tokens that expire after
    ``expired_before`` (a token is accepted up to the clock skew after its expiry)."""
    query = select(
        RevokedAccessToken.jti, RevokedAccessToken.expires_at, RevokedAccessToken.client_id
    ).where(RevokedAccessToken.expires_at > expired_before)
    return [tuple(row) for row in session.execute(query)]


def forget_access_revocations(session, expired_before):
    """Drop the records of tokens no one can use any more; how many."""
    return session.execute(
        delete(RevokedAccessToken)
        .where(RevokedAccessToken.expires_at <= expired_before)
        .execution_options(synchronize_session=False)
    ).rowcount


def family_members(session, family_id):
    """``(client_id, user_id, revoked)`` of every token and code of the family."""
    tokens = select(
        RefreshToken.client_id, RefreshToken.user_id, RefreshToken.revoked_at.is_not(None)
    ).where(RefreshToken.family_id == family_id)
    codes = select(
        AuthorizationCode.client_id,
        AuthorizationCode.user_id,
        AuthorizationCode.revoked_at.is_not(None),
    ).where(AuthorizationCode.family_id == family_id)
    return [tuple(row) for row in session.execute(tokens.union_all(codes))]


# --- authorization codes -------------------------------------------------------


def find_code(session, code_hash):
    return _find_by_hash(session, AuthorizationCode.code_hash, code_hash)


def consume_code(session, code_hash, client_id, now):
    """Mark the code used if it is unused, unexpired and the client's; the row, or None."""
    return _consume_once(session, AuthorizationCode.code_hash, code_hash, client_id, now)


# --- signing keys --------------------------------------------------------------


def current_signing_key(session):
    """The newest key that is not retired, or None."""
    query = (
        select(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.kid)
        .limit(1)
    )
    return session.scalars(query.execution_options(populate_existing=True)).first()


def all_signing_keys(session, retired_after=None):
    """Every key, newest first; with ``retired_after``, only those current or
    retired after that moment (the published ones)."""
    query = select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid)
    if retired_after is not None:
        query = query.where(
            or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > retired_after)
        )
    return list(session.scalars(query.execution_options(populate_existing=True)))


def retire_signing_keys(session, now, keep_kid=None):
    """Retire every key still current except ``keep_kid``; their kids."""
    statement = (
        update(SigningKey)
        .where(SigningKey.retired_at.is_(None), SigningKey.kid != (keep_kid or ""))
        .values(retired_at=now)
        .returning(SigningKey.kid)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(statement))
