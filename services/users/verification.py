"""Contact verification rules, free of Nameko and of database sessions.

An email address is proven by a link holding a random token (256 bits); a
phone number by a six-digit code sent by SMS. Both are single use, expire,
and are stored only as a hash: the raw secret exists in the users service's
memory while it is issued, in the one message that carries it to its owner,
and nowhere else (never in an event, so never on the bus or in an outbox).
"""

import datetime
import hashlib
import hmac
import secrets
from dataclasses import dataclass

EMAIL = "email"
PHONE = "phone"
CHANNELS = (EMAIL, PHONE)

CODE_DIGITS = 6
TOKEN_BYTES = 32

# Why a secret was refused (verdict); OK is the only success.
OK = "ok"
NONE_PENDING = "none_pending"
STALE = "stale"
EXPIRED = "expired"
EXHAUSTED = "exhausted"
WRONG = "wrong"


@dataclass(frozen=True)
class Pending:
    """An issued, unused secret: what it proves (``target``), its hash and limits."""

    target: str
    secret_hash: str
    expires_at: datetime.datetime
    attempts: int = 0


def new_email_token():
    """A random, URL-safe token for an email link."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_phone_code():
    """A random six-digit code, leading zeros kept."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def secret_hash(channel, secret, user_id=""):
    """The stored form of a secret. A phone code is bound to its user (a code
    alone has only a million values); an email token is looked up by its hash."""
    material = f"{channel}:{user_id}:{secret}" if channel == PHONE else f"{channel}::{secret}"
    return hashlib.sha256(material.encode()).hexdigest()


def expiry(now, ttl_seconds):
    return now + datetime.timedelta(seconds=ttl_seconds)


def verdict(pending, given_hash, current_target, now, max_attempts=None):
    """Whether ``given_hash`` proves ``current_target`` now.

    ``pending.attempts`` already counts this try (it is incremented before the
    check, atomically, so parallel guesses cannot exceed ``max_attempts``).
    A secret issued for another address or number than the user's current one
    is ``STALE``: changing the phone un-verifies it and voids its old code.
    """
    if pending is None:
        return NONE_PENDING
    if pending.target != current_target:
        return STALE
    if now >= pending.expires_at:
        return EXPIRED
    if max_attempts is not None and pending.attempts > max_attempts:
        return EXHAUSTED
    if not hmac.compare_digest(pending.secret_hash, given_hash):
        return WRONG
    return OK


# The one message the caller sees for each refusal (ValidationError details).
REFUSALS = {
    NONE_PENDING: "no verification is pending; ask for a new one",
    STALE: "no verification is pending; ask for a new one",
    EXPIRED: "has expired; ask for a new one",
    EXHAUSTED: "too many wrong tries; ask for a new code",
    WRONG: "is wrong",
}
