"""Notifications contracts (JSON Schema 2020-12): RPC arguments, results and events.

Importable by the gateway: no side effects, imports only the chassis schema
helpers and the pure domain.
"""

from services.chassis.schemas import UUID_PATTERN, obj
from services.notifications import domain

_TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}
_ID = {"type": "string", "pattern": UUID_PATTERN}
CHANNEL = {"type": "string", "enum": list(domain.CHANNELS)}
TEMPLATE = {"type": "string", "enum": list(domain.TEMPLATES)}
STATUS = {"type": "string", "enum": list(domain.STATUSES)}

NOTIFICATION = obj(
    {
        "id": _ID,
        "channel": CHANNEL,
        "template": TEMPLATE,
        # Empty when the user was unknown (the row is failed then).
        "recipient": {"type": "string"},
        # SMS has no subject.
        "subject": {"type": ["string", "null"]},
        "status": STATUS,
        "attempts": {"type": "integer", "minimum": 0},
        "created_at": _TIMESTAMP,
        "sent_at": {"anyOf": [_TIMESTAMP, {"type": "null"}]},
        # The event that caused it, "<service>.<event>" (e.g. "orders.order_confirmed").
        "event_type": {"type": "string"},
    },
    required=(
        "id",
        "channel",
        "template",
        "recipient",
        "subject",
        "status",
        "attempts",
        "created_at",
        "sent_at",
        "event_type",
    ),
)

NOTIFICATION_PAGE = obj(
    {
        "items": {"type": "array", "items": NOTIFICATION},
        "next_cursor": {"type": ["string", "null"]},
    },
    required=("items", "next_cursor"),
)

# list_notifications(user_id, limit=20, cursor=None); absent arguments are left out.
LIST_QUERY = obj(
    {
        "user_id": {"type": "string", "minLength": 1, "maxLength": 100},
        "limit": {"type": "integer", "minimum": 1, "maximum": domain.LIMIT_MAX},
        "cursor": {"type": "string", "minLength": 1, "maxLength": domain.CURSOR_MAX},
    },
    required=("user_id",),
)

NOTIFICATION_SENT = obj(
    {"notification_id": _ID, "user_id": _ID, "channel": CHANNEL, "template": TEMPLATE},
    required=("notification_id", "user_id", "channel", "template"),
)

NOTIFICATION_FAILED = obj(
    {
        "notification_id": _ID,
        "user_id": _ID,
        "channel": CHANNEL,
        "template": TEMPLATE,
        "error": {"type": "string", "minLength": 1, "maxLength": domain.ERROR_MAX},
    },
    required=("notification_id", "user_id", "channel", "template", "error"),
)

# RPC methods a caller may send again after a timeout or a transient failure
# (services/chassis/service_client.py retries only these): reads, which change
# nothing. Any other method may have run when its caller gave up waiting.
IDEMPOTENT_RPC = frozenset({"health", "list_notifications"})

EVENTS = {
    "notification_sent": {
        "version": 1,
        "summary": "A notification was delivered to the mail server or the SMS gateway.",
        "payload": NOTIFICATION_SENT,
    },
    "notification_failed": {
        "version": 1,
        "summary": "A notification was given up: attempts used up, a permanent error, "
        "or an unknown user.",
        "payload": NOTIFICATION_FAILED,
    },
}

__all__ = [
    "NOTIFICATION",
    "NOTIFICATION_PAGE",
    "LIST_QUERY",
    "NOTIFICATION_SENT",
    "NOTIFICATION_FAILED",
    "EVENTS",
]
