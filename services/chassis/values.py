"""Small value rules every service shares: UTC timestamps and UUID identifiers."""

import datetime
import uuid


def utcnow():
    return datetime.datetime.now(datetime.UTC)


def isoformat_utc(moment):
    """ISO-8601 in UTC with a ``Z``: ``2024-05-01T12:00:00.000000Z`` (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    text = moment.astimezone(datetime.UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def parse_uuid(value):
    """The UUID named by ``value`` (any accepted spelling), or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
