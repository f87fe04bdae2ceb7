"""Small value rules every service shares: UTC timestamps, UUID identifiers, money."""

import datetime
import re
import uuid
from dataclasses import dataclass

# Money as every contract spells it: ``{"amount": <minor units>, "currency": "EUR"}``.
CURRENCY_PATTERN = r"^[A-Z]{3}$"
CURRENCY_MESSAGE = "must be a three-letter upper-case ISO 4217 code"
MAX_AMOUNT = 10**9  # minor units: the largest price, order total or payment

_CURRENCY = re.compile(CURRENCY_PATTERN)


def utcnow():
    return datetime.datetime.now(datetime.UTC)


def isoformat_utc(moment):
    """ISO-8601 in UTC with a ``Z``: ``2024-05-01T12:00:00.000000Z`` (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    text = moment.astimezone(datetime.UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def whole(value):
    """``value`` as an int if it is a float with no fraction, else unchanged.

    JSON Schema's "integer" accepts 1.0 (and 1e3), and JSON parsers give those
    as floats: every service reads a schema-valid integer through this."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def parse_uuid(value):
    """The UUID named by ``value`` (any accepted spelling), or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


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
    def from_dict(cls, money):
        return cls(whole(money["amount"]), money["currency"])

    def to_dict(self):
        return {"amount": self.amount, "currency": self.currency}
