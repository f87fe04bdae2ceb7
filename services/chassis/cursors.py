"""Signed opaque keyset cursors for list RPCs.

A cursor is the position after which the next page starts: a few text fields
behind a version, with a short MAC, base64url-encoded without padding:
``base64url("<version>.<field>....<mac>")``. The MAC is there so that garbage
or an edited cursor is refused with a clear error instead of paging from an odd
place, and so that a service can trust what it signed (the catalog caches only
pages whose cursor it issued from a cached page): its key is a per-service
secret from config (``services.<name>.cursor_key``, see :func:`signing_key`).

Every way a cursor can be wrong is the same ValidationError
``{"cursor": "is invalid"}``.
"""

import base64
import binascii
import datetime
import hashlib
import hmac
import re
import uuid

from services.chassis.errors import ValidationError
from services.chassis.values import parse_uuid

CURSOR_MAX = 200  # characters of an encoded cursor; also the schemas' maxLength

_SEPARATOR = "."
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# Microseconds since the epoch: ASCII digits, at most 20 (year 9999 needs 18).
_MICROS = re.compile(r"[0-9]{1,20}")


def signing_key(secret: str) -> bytes:
    """The MAC key of a configured ``cursor_key`` (any length; BLAKE2b takes 64 bytes at most)."""
    return hashlib.sha256(b"agora.cursor-key." + secret.encode()).digest()


def invalid_cursor():
    """The one error of every bad cursor."""
    return ValidationError("invalid cursor", {"cursor": "is invalid"})


class Cursor:
    """Encodes and checks the cursors of one listing (its ``key`` and ``version``).

    Changing the key or the version invalidates every cursor already issued.
    """

    def __init__(self, key: bytes, version: str, max_length: int = CURSOR_MAX):
        if not version or _SEPARATOR in version:
            raise ValueError(f"version must be non-empty and free of {_SEPARATOR!r}")
        self.key = key
        self.version = version
        self.max_length = max_length

    def _mac(self, body):
        return hashlib.blake2b(body.encode(), key=self.key, digest_size=8).hexdigest()

    def encode(self, *fields: str) -> str:
        """The cursor of ``fields`` (ASCII text without ``.``)."""
        for field in fields:
            if not isinstance(field, str) or _SEPARATOR in field or not field.isascii():
                raise ValueError(f"cursor fields must be ASCII strings without {_SEPARATOR!r}")
        body = _SEPARATOR.join((self.version, *fields))
        token = f"{body}{_SEPARATOR}{self._mac(body)}".encode()
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decode(self, cursor, count: int) -> list[str]:
        """The ``count`` fields of ``cursor``; ValidationError ``{"cursor": "is invalid"}``
        if it is not a string of 1 to ``max_length`` characters, not base64url, of
        another version, carries a wrong MAC or another number of fields."""
        if not isinstance(cursor, str) or not cursor or len(cursor) > self.max_length:
            raise invalid_cursor()
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            text = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
        except (binascii.Error, ValueError):
            raise invalid_cursor() from None
        parts = text.split(_SEPARATOR)
        if len(parts) != count + 2 or parts[0] != self.version:
            raise invalid_cursor()
        body = _SEPARATOR.join(parts[:-1])
        if not hmac.compare_digest(parts[-1], self._mac(body)):
            raise invalid_cursor()
        return parts[1:-1]


def split_page(rows, limit, cursor_of):
    """``(items, next_cursor)`` from the ``limit + 1`` rows a listing fetched: the
    extra row, when there is one, only says that another page follows, whose
    cursor ``cursor_of(last item shown)`` gives."""
    items = rows[:limit]
    return items, cursor_of(items[-1]) if len(rows) > limit else None


# --- (created_at, id): newest-first listings -----------------------------------


def micros(moment):
    """Whole microseconds since the epoch of ``moment`` (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(text):
    """The UTC datetime of a :func:`micros` string; ValidationError on ``cursor`` otherwise."""
    if not isinstance(text, str) or not _MICROS.fullmatch(text):
        raise invalid_cursor()
    try:
        return _EPOCH + datetime.timedelta(microseconds=int(text))
    except OverflowError:
        raise invalid_cursor() from None


class TimeIdCursor:
    """Cursors of the ``(created_at, id)`` of the last row shown.

    The id is spelt hyphenated, or as 32 hex digits with ``hex_ids``; the
    spelling is part of what the MAC covers, so it must stay as it was for
    cursors already issued to remain valid. Decoding accepts any UUID spelling.
    """

    def __init__(
        self, key: bytes, version: str, *, hex_ids: bool = False, max_length: int = CURSOR_MAX
    ):
        self.cursor = Cursor(key, version, max_length)
        self.hex_ids = hex_ids

    def encode(self, created_at, row_id) -> str:
        row_id = uuid.UUID(str(row_id))
        text = row_id.hex if self.hex_ids else str(row_id)
        return self.cursor.encode(str(micros(created_at)), text)

    def decode(self, cursor):
        """``(created_at, id)`` of ``cursor`` (an aware UTC datetime and a UUID)."""
        moment, text = self.cursor.decode(cursor, 2)
        row_id = parse_uuid(text)
        if row_id is None:
            raise invalid_cursor()
        return from_micros(moment), row_id

    def page(self, rows, limit):
        """``split_page`` of rows with ``created_at`` and ``id``, newest first."""
        return split_page(rows, limit, lambda last: self.encode(last.created_at, last.id))
