"""Catalog rules with no I/O: money, SKUs, list cursors, product changes and views.

Nothing here touches Nameko, a database session or Redis, so every rule is
unit-tested without brokers.
"""

import base64
import binascii
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass

from services.chassis.errors import ValidationError
from services.chassis.values import isoformat_utc, parse_uuid, utcnow

# SKUs are stored exactly as given: lower case is rejected (with a message that
# says so), not silently upper-cased, so a client never sees its SKU change.
SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,63}$"
SKU_MESSAGE = "must be 2-64 characters of A-Z, 0-9 and '-' (upper case), not starting with '-'"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
CURRENCY_MESSAGE = "must be a three-letter upper-case ISO 4217 code"
MAX_AMOUNT = 10**9  # minor units
NAME_MAX = 200
DESCRIPTION_MAX = 5000
QUERY_MAX = 100
LIMIT_DEFAULT = 20
LIMIT_MAX = 100
CURSOR_MAX = 200

_CURRENCY = re.compile(CURRENCY_PATTERN)


@dataclass(frozen=True)
class Money:
    """An amount in minor units (cents) of one currency; never a float."""

    amount: int
    currency: str

    def __post_init__(self):
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValueError("amount must be an integer number of minor units")
        if not 0 <= self.amount <= MAX_AMOUNT:
            raise ValueError(f"amount must be between 0 and {MAX_AMOUNT}")
        if not isinstance(self.currency, str) or not _CURRENCY.match(self.currency):
            raise ValueError(f"currency {CURRENCY_MESSAGE}")

    @classmethod
    def from_dict(cls, price):
        amount = price["amount"]
        # JSON Schema's "integer" accepts 1.0 (and 1e3): keep such values whole.
        if isinstance(amount, float) and amount.is_integer():
            amount = int(amount)
        return cls(amount, price["currency"])

    def to_dict(self):
        return {"amount": self.amount, "currency": self.currency}


def parse_product_id(value):
    """The canonical UUID string of ``value``, or None if it is not a UUID."""
    parsed = parse_uuid(value)
    return str(parsed) if parsed else None


def new_product(payload):
    """Column values for a validated ``PRODUCT_CREATE`` payload, defaults applied."""
    price = Money.from_dict(payload["price"])
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "sku": payload["sku"],
        "name": payload["name"],
        "description": payload.get("description", ""),
        "price_amount": price.amount,
        "price_currency": price.currency,
        "active": payload.get("active", True),
        "created_at": now,
        "updated_at": now,
    }


def product_changes(changes):
    """Column values for a validated ``PRODUCT_UPDATE``; always bumps ``updated_at``."""
    values = {key: changes[key] for key in ("name", "description", "active") if key in changes}
    if "price" in changes:
        price = Money.from_dict(changes["price"])
        values["price_amount"] = price.amount
        values["price_currency"] = price.currency
    values["updated_at"] = utcnow()
    return values


def product_view(row):
    """The public product dict (the ``PRODUCT`` contract) of a stored product."""
    return {
        "id": str(row.id),
        "sku": row.sku,
        "name": row.name,
        "description": row.description,
        "price": Money(row.price_amount, row.price_currency).to_dict(),
        "active": row.active,
        "created_at": isoformat_utc(row.created_at),
        "updated_at": isoformat_utc(row.updated_at),
    }


def like_pattern(q):
    """A LIKE pattern matching ``q`` literally anywhere (escape character ``\\``)."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- list cursors ------------------------------------------------------------
# A cursor is the position after which the next page starts (the last seq
# shown). It is opaque to clients and carries a short MAC so that garbage or an
# edited cursor is rejected with a clear error instead of paging from an odd
# place. The MAC key is not a secret: the cursor reveals nothing private and
# forging one only lets a client start a public listing at another position.
_CURSOR_VERSION = "1"
_CURSOR_KEY = b"agora.catalog.cursor.v1"


def _cursor_mac(body):
    return hashlib.blake2b(body.encode(), key=_CURSOR_KEY, digest_size=8).hexdigest()


def encode_cursor(seq):
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError("seq must be a non-negative integer")
    body = f"{_CURSOR_VERSION}.{seq}"
    token = f"{body}.{_cursor_mac(body)}".encode()
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_cursor(cursor):
    """The seq encoded in ``cursor``; ValidationError ``{"cursor": "is invalid"}`` otherwise."""
    invalid = ValidationError("invalid cursor", {"cursor": "is invalid"})
    if not isinstance(cursor, str) or not cursor or len(cursor) > CURSOR_MAX:
        raise invalid
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid from None
    parts = text.split(".")
    if len(parts) != 3 or parts[0] != _CURSOR_VERSION or not parts[1].isdigit():
        raise invalid
    body = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(parts[2], _cursor_mac(body)):
        raise invalid
    return int(parts[1])


def page(rows, limit, seq_of):
    """Split ``limit + 1`` fetched rows into the page and its ``next_cursor``."""
    items = rows[:limit]
    next_cursor = encode_cursor(seq_of(items[-1])) if len(rows) > limit else None
    return items, next_cursor
