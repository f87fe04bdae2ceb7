"""Notification rules with no I/O: which rows an event makes, retries, contacts, cursors.

Nothing here touches Nameko, a database session, SMTP or HTTP, so every rule is
unit-tested without brokers. Rendering the texts lives in ``templates``.
"""

import datetime
import time
import uuid
from dataclasses import dataclass

from services.chassis import cursors
from services.chassis.errors import ValidationError
from services.chassis.values import isoformat_utc, parse_uuid

EMAIL = "email"
SMS = "sms"
CHANNELS = (EMAIL, SMS)

QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
# Recorded, never sent: the contact is not proven (``UNVERIFIED``), or the
# recipient had their hourly share already (``OVER_CAP``). Neither is retried.
SKIPPED = "skipped"
SUPPRESSED = "suppressed"
STATUSES = (QUEUED, SENT, FAILED, SKIPPED, SUPPRESSED)
UNVERIFIED = "unverified"
OVER_CAP = "over the hourly cap for this recipient"

# (source service, event name) -> template. One row per channel is recorded per event.
TEMPLATE_FOR_EVENT = {
    ("orders", "order_confirmed"): "order_confirmed",
    ("orders", "order_payment_failed"): "payment_failed",
    ("orders", "order_cancelled"): "order_cancelled",
    ("orders", "order_rejected"): "order_rejected",
    ("orders", "order_expired"): "order_expired",
    ("billing", "refund_issued"): "refund_issued",
    ("billing", "receipt_issued"): "receipt",
}
# (users event) -> template and the channel it proves. Sent before the contact is
# verified (that is their point); the only messages that are.
EMAIL_VERIFICATION = "email_verification"
PHONE_VERIFICATION = "phone_verification"
VERIFICATION_FOR_EVENT = {
    ("users", "email_verification_requested"): (EMAIL_VERIFICATION, "email"),
    ("users", "phone_verification_requested"): (PHONE_VERIFICATION, "phone"),
}
VERIFICATION_TEMPLATES = (EMAIL_VERIFICATION, PHONE_VERIFICATION)
TEMPLATES = tuple(TEMPLATE_FOR_EVENT.values()) + VERIFICATION_TEMPLATES
# Events that make an email only, never a text message.
EMAIL_ONLY = frozenset({"order_rejected"})
# What a sent verification's stored body becomes: the secret is not kept.
SCRUBBED_BODY = "(the verification secret is not kept once the message is sent)"

LIMIT_DEFAULT = 20
LIMIT_MAX = 100
CURSOR_MAX = cursors.CURSOR_MAX
ERROR_MAX = 500
USER_NOT_FOUND = "user not found"


# --- contacts ----------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    """Where a user can be reached; ``phone`` is None unless the user record has one.

    Only a verified address or number gets anything but its verification message.
    """

    email: str
    phone: str | None = None
    name: str | None = None
    email_verified: bool = False
    phone_verified: bool = False


def _clean(value):
    return value.strip() if isinstance(value, str) and value.strip() else None


def contact_from_user(user):
    """The Contact of a users-service record (``{"id", "email", "name"?, "phone"?, ...}``)."""
    return Contact(
        email=_clean(user.get("email")) or "",
        phone=_clean(user.get("phone")),
        name=_clean(user.get("name")),
        email_verified=user.get("email_verified") is True,
        phone_verified=user.get("phone_verified") is True,
    )


class ContactCache:
    """Contacts by user id for ``ttl`` seconds, at most ``max_entries`` of them.

    In-process and per service instance. A profile change (``users.profile_updated``)
    drops the user's entry in every instance; ``ttl`` bounds how long a change is
    missed if that broadcast is lost.
    Only found users are cached, so a user created a moment later is never hidden.
    """

    def __init__(self, ttl=60.0, max_entries=10000, clock=time.monotonic):
        if ttl < 0:
            raise ValueError("ttl must not be negative")
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries = {}

    def get(self, user_id):
        """The cached Contact, or None if absent or expired."""
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        expires, contact = entry
        if self.clock() >= expires:
            self._entries.pop(user_id, None)
            return None
        return contact

    def put(self, user_id, contact):
        if self.ttl == 0:
            return
        now = self.clock()
        self._entries.pop(user_id, None)
        if len(self._entries) >= self.max_entries:
            for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
                del self._entries[key]
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest insertion
        self._entries[user_id] = (now + self.ttl, contact)

    def forget(self, user_id):
        """Drop the user's entry, if any: their profile changed."""
        self._entries.pop(user_id, None)

    def __len__(self):
        return len(self._entries)


# --- events -> rows ----------------------------------------------------------


def event_ids(event):
    """``(event_id, user_id)`` UUIDs of an incoming envelope; ValidationError if malformed."""
    problems = {}
    event_id = parse_uuid(event.get("event_id")) if isinstance(event, dict) else None
    if event_id is None:
        problems["event_id"] = "must be a UUID"
    data = event.get("data") if isinstance(event, dict) else None
    user_id = parse_uuid(data.get("user_id")) if isinstance(data, dict) else None
    if user_id is None:
        problems["data.user_id"] = "must be a UUID"
    if problems:
        raise ValidationError("malformed event", problems)
    return event_id, user_id


def notification_rows(event, template, rendered, contact, sms_enabled, now):
    """Column values of the notifications an event makes, one per channel.

    * the user is unknown (``contact`` None): one email row, already failed, so
      the event leaves a trace instead of vanishing;
    * otherwise an email row, and an SMS row when the user has a phone, an SMS
      provider is configured and the event is not email-only (a rejected
      order). A row to a verified contact is queued and due now; one to an
      unverified contact is recorded ``skipped`` (``unverified``), never sent.
    """
    event_id, user_id = event_ids(event)
    base = {
        "user_id": user_id,
        "template": template,
        "event_id": event_id,
        "event_type": str(event.get("type") or ""),
        "attempts": 0,
        "sent_at": None,
        "created_at": now,
        "updated_at": now,
    }
    if contact is None or not contact.email:
        return [
            {
                **base,
                "id": uuid.uuid4(),
                "channel": EMAIL,
                "recipient": "",
                "subject": rendered.subject,
                "body": rendered.body,
                "status": FAILED,
                "next_attempt_at": None,
                "last_error": USER_NOT_FOUND if contact is None else "user has no email address",
            }
        ]
    queued = {**base, "status": QUEUED, "next_attempt_at": now, "last_error": None}
    skipped = {**base, "status": SKIPPED, "next_attempt_at": None, "last_error": UNVERIFIED}
    rows = [
        {
            **(queued if contact.email_verified else skipped),
            "id": uuid.uuid4(),
            "channel": EMAIL,
            "recipient": contact.email,
            "subject": rendered.subject,
            "body": rendered.body,
        }
    ]
    if sms_enabled and contact.phone and template not in EMAIL_ONLY:
        rows.append(
            {
                **(queued if contact.phone_verified else skipped),
                "id": uuid.uuid4(),
                "channel": SMS,
                "recipient": contact.phone,
                "subject": None,
                "body": rendered.sms,
            }
        )
    return rows


def verification_row(event, template, issued, rendered, sms_enabled, now):
    """The one row of a verification message (``issued`` from users' issue_verification).

    Queued whatever the contact's state (proving it is the point). A phone code
    with no SMS provider configured fails at once: it cannot be delivered.
    """
    event_id, user_id = event_ids(event)
    sms = issued["channel"] == "phone"
    row = {
        "id": uuid.uuid4(),
        "user_id": user_id,
        "template": template,
        "event_id": event_id,
        "event_type": str(event.get("type") or ""),
        "channel": SMS if sms else EMAIL,
        "recipient": issued["recipient"],
        "subject": None if sms else rendered.subject,
        "body": rendered.sms if sms else rendered.body,
        "attempts": 0,
        "sent_at": None,
        "created_at": now,
        "updated_at": now,
        "status": QUEUED,
        "next_attempt_at": now,
        "last_error": None,
    }
    if sms and not sms_enabled:
        row.update(status=FAILED, next_attempt_at=None, last_error="no SMS provider configured")
    return row


# --- the per-recipient cap ---------------------------------------------------


def recipient_key(channel, recipient):
    """One recipient, however its address is spelled: ``(channel, address)``."""
    return channel, recipient.strip().lower()


def apply_cap(rows, recent, cap):
    """Suppress the queued rows beyond ``cap`` messages per recipient per hour.

    ``recent`` maps ``recipient_key`` to the messages that recipient got (or
    has queued) in the past hour; it is updated with the rows kept, so several
    rows to one recipient count one by one. Rows that are not queued (skipped,
    failed) are not messages and count for nothing. Returns the rows, changed.
    """
    for row in rows:
        if row["status"] != QUEUED:
            continue
        key = recipient_key(row["channel"], row["recipient"])
        if recent.get(key, 0) >= cap:
            row.update(status=SUPPRESSED, next_attempt_at=None, last_error=OVER_CAP)
        else:
            recent[key] = recent.get(key, 0) + 1
    return rows


# --- sending and retries -----------------------------------------------------


def retry_delay(attempts, base, cap):
    """Seconds before the next try after ``attempts`` failed tries (>= 1): base * 2^(n-1)."""
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    # No float overflow for large attempt counts: the cap is reached long before.
    exponent = min(attempts - 1, 64)
    return min(base * (2**exponent), cap)


@dataclass(frozen=True)
class Outcome:
    status: str
    next_attempt_at: datetime.datetime | None
    last_error: str | None
    sent_at: datetime.datetime | None


def after_send(attempts, error, now, max_attempts, base, cap, permanent=False):
    """What a try (the ``attempts``-th, counted at claim) leaves in the row.

    Sent, or queued again after the backoff, or failed for good once
    ``max_attempts`` tries are used up or the error is permanent.
    """
    if error is None:
        return Outcome(SENT, None, None, now)
    error = short_error(error)
    if permanent or attempts >= max_attempts:
        return Outcome(FAILED, None, error, None)
    delay = retry_delay(attempts, base, cap)
    return Outcome(QUEUED, now + datetime.timedelta(seconds=delay), error, None)


def claim_margin(smtp_timeout, sms_timeout):
    """How long a claimed row stays invisible to other senders (seconds).

    An SMTP conversation is several round trips, each bounded by the timeout;
    after the margin a sender that died mid-send leaves the row to the others.
    """
    return 4 * max(smtp_timeout, sms_timeout) + 5.0


def short_error(error, limit=ERROR_MAX):
    text = " ".join(str(error).split()) or "error"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- views and list cursors --------------------------------------------------


def notification_view(row):
    """The ``NOTIFICATION`` contract of a stored notification."""
    return {
        "id": str(row.id),
        "channel": row.channel,
        "template": row.template,
        "recipient": row.recipient,
        "subject": row.subject,
        "status": row.status,
        "attempts": row.attempts,
        "created_at": isoformat_utc(row.created_at),
        "sent_at": isoformat_utc(row.sent_at) if row.sent_at else None,
        "event_type": row.event_type,
    }


def parse_user_id(value):
    """The UUID of a ``user_id`` argument; ValidationError if it is not one."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise ValidationError("invalid user id", {"user_id": "must be a UUID"})
    return parsed


# A cursor is the (created_at, id) of the last row shown, newest first. It is
# opaque and signed with the service's cursor key (services.chassis.cursors).


def listing_cursors(key: bytes):
    """The cursors of ``list_notifications``, signed with ``key``: ``.decode(cursor)``
    gives ``(created_at, id)``, ``.page(rows, limit)`` the page and its ``next_cursor``."""
    return cursors.TimeIdCursor(key, "1", hex_ids=True)
