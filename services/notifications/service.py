"""The notifications service: order and billing events become emails (and SMS).

Handlers only *record* what to send, one row per (event, channel), in the
handler's transaction: they never talk to a mail server, so a slow or dead
SMTP server never holds up the order saga. Sending is the sender's job:

* after a handler commits it wakes the send loop, which otherwise runs when
  the earliest queued row is due (a retry), or ``send_interval`` seconds after
  its last run at the latest (rows another process queued and left);
* the loop claims due rows in a short transaction of its own
  (``FOR UPDATE SKIP LOCKED``; ``attempts + 1`` and ``next_attempt_at`` pushed
  past the time a send can take), commits, sends without holding any lock,
  then records each outcome: sent (emits ``notification_sent``), queued again
  after ``backoff_base * 2^(n-1)`` seconds capped at ``backoff_max``, or failed
  for good after ``max_attempts`` tries or a permanent error (emits
  ``notification_failed``).

Delivery is at least once: if the process dies between a send and recording
it, the row is sent again after the claim margin.
"""

import datetime
import logging
import types

import eventlet
from eventlet.event import Event
from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider, Entrypoint

from services.chassis import cursors
from services.chassis.db import Database
from services.chassis.errors import NotFound
from services.chassis.messaging import (
    EventDispatcher,
    broadcast_handler,
    event_handler,
    finish_unit_of_work,
    rpc,
)
from services.chassis.metrics import NOTIFICATIONS_SENT, children
from services.chassis.schemas import validate
from services.chassis.service import AgoraService, DeadLetterAdmin
from services.chassis.service_client import ServiceClient
from services.chassis.values import parse_uuid, utcnow
from services.notifications import domain, models, templates
from services.notifications.channels import EmailChannel, SendError, sms_provider
from services.notifications.models import Base
from services.notifications.schemas import EVENTS, LIST_QUERY

log = logging.getLogger(__name__)

SEND_BATCH = 50
# agora_notifications_sent_total's outcome for a try that failed with tries left.
RETRY = "retry"
_sends = children(
    NOTIFICATIONS_SENT,
    "notifications",
    known=[
        (channel, outcome)
        for channel in domain.CHANNELS
        for outcome in (domain.SENT, RETRY, domain.FAILED, domain.SUPPRESSED, domain.SKIPPED)
    ],
)
CONTACT_TTL = 60.0


class SendLoop(Entrypoint):
    """``@send_loop("send_interval")``: a timer whose interval comes from the
    service's config section, and that can be woken early with ``wake()``.

    It runs the method once at start (rows left queued by a previous process),
    then whenever woken, or when the method said its next work is due (it
    returns in how many seconds, or None), at most ``interval`` seconds after
    the last run. Wakes that arrive during a run make one more run right after
    it; several coalesce. The unit of work (commit, events) finishes before the
    next run starts.
    """

    def __init__(self, setting, **kwargs):
        self.setting = setting
        self.interval = None
        self.gt = None
        self._signal = Event()
        self._done = Event()
        self._stopping = False
        super().__init__(**kwargs)

    def setup(self):
        settings = self.container.config["AGORA"]["services"][self.container.service_name]
        self.interval = float(settings[self.setting])

    def start(self):
        self.gt = self.container.spawn_managed_thread(self._run, identifier=repr(self))

    def stop(self):
        self._stopping = True
        self.wake()
        if self.gt is not None:
            self.gt.wait()

    def kill(self):
        if self.gt is not None:
            self.gt.kill()

    def wake(self):
        if not self._signal.ready():
            self._signal.send(True)

    def _run(self):
        while not self._stopping:
            self.container.spawn_worker(self, (), {}, handle_result=self.handle_result)
            due_in = self._done.wait()
            self._done.reset()
            # Not at once for a row already due: another sender holds it locked.
            wait = self.interval if due_in is None else min(self.interval, max(due_in, 0.1))
            with eventlet.Timeout(wait, False):
                self._signal.wait()
            if self._signal.ready():
                self._signal.reset()

    def handle_result(self, worker_ctx, result, exc_info):
        # Commit (and publish) before the loop may start the next run.
        exc_info = finish_unit_of_work(worker_ctx, exc_info)
        self._done.send(result if exc_info is None else None)
        return result, exc_info


send_loop = SendLoop.decorator


class SenderWakeup(DependencyProvider):
    """``self.wake_sender()``: run the send loop now instead of at its next tick."""

    def get_dependency(self, worker_ctx):
        loops = [e for e in self.container.entrypoints if isinstance(e, SendLoop)]

        def wake():
            for loop in loops:
                loop.wake()

        return wake


class Channels(DependencyProvider):
    """``self.channels.email`` (SMTP) and ``self.channels.sms`` (the configured provider)."""

    def setup(self):
        settings = self.container.config["AGORA"]["services"][self.container.service_name]
        self.channels = types.SimpleNamespace(
            email=EmailChannel.from_settings(settings["smtp"]),
            sms=sms_provider(settings["sms"]),
        )

    def stop(self):
        self.channels.sms.close()

    def get_dependency(self, worker_ctx):
        return self.channels


class Contacts(DependencyProvider):
    """The process's contact cache (user id -> email, phone, name), ``CONTACT_TTL`` seconds."""

    def setup(self):
        self.cache = domain.ContactCache(ttl=CONTACT_TTL)

    def get_dependency(self, worker_ctx):
        return self.cache


def _deliver(channels, note, limit):
    """Send one claimed notification: ``(error or None, permanent)``; never raises."""
    try:
        with eventlet.Timeout(limit, SendError(f"no answer within {limit:.0f}s")):
            if note["channel"] == domain.EMAIL:
                channels.email.send(
                    note["recipient"],
                    note["subject"] or "",
                    note["body"],
                    headers={"X-Agora-Notification-Id": str(note["id"])},
                )
            else:
                channels.sms.send(note["recipient"], note["body"])
    except SendError as exc:
        return str(exc), exc.permanent
    except Exception as exc:  # a bug in a channel must not stop the others
        log.exception("sending notification %s failed unexpectedly", note["id"])
        return f"{exc.__class__.__name__}: {exc}", False
    return None, False


def _note_event(note, **extra):
    """The payload of ``notification_sent`` / ``notification_failed`` about ``note``."""
    return {
        "notification_id": str(note["id"]),
        "user_id": str(note["user_id"]),
        "channel": note["channel"],
        "template": note["template"],
        **extra,
    }


class NotificationsService(DeadLetterAdmin, AgoraService):
    name = "notifications"

    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)
    config = Config()
    users = ServiceClient("users")
    channels = Channels()
    contacts = Contacts()
    wake_sender = SenderWakeup()

    # --- handlers: record, never send -------------------------------------------

    @event_handler("orders", "order_confirmed")
    def on_order_confirmed(self, event):
        self._record("order_confirmed", event)

    @event_handler("orders", "order_payment_failed")
    def on_order_payment_failed(self, event):
        self._record("payment_failed", event)

    @event_handler("orders", "order_cancelled")
    def on_order_cancelled(self, event):
        self._record("order_cancelled", event)

    @event_handler("orders", "order_rejected")
    def on_order_rejected(self, event):
        self._record("order_rejected", event)

    @event_handler("orders", "order_expired")
    def on_order_expired(self, event):
        self._record("order_expired", event)

    @event_handler("billing", "refund_issued")
    def on_refund_issued(self, event):
        self._record("refund_issued", event)

    @event_handler("billing", "receipt_issued")
    def on_receipt_issued(self, event):
        self._record("receipt", event)

    @event_handler("users", "email_verification_requested")
    def on_email_verification_requested(self, event):
        self._record_verification("email_verification_requested", event)

    @event_handler("users", "phone_verification_requested")
    def on_phone_verification_requested(self, event):
        self._record_verification("phone_verification_requested", event)

    @broadcast_handler("users", "profile_updated")
    def on_profile_updated(self, event):
        """A user's name or phone changed: this instance forgets their contact."""
        data = event.get("data") if isinstance(event, dict) else None
        user_id = parse_uuid(data.get("user_id")) if isinstance(data, dict) else None
        if user_id is not None:
            self.contacts.forget(str(user_id))

    def _record(self, template, event):
        # No check for notifications of this event here: the chassis inbox has
        # already let only the first delivery through, in this transaction, and
        # the unique (event, channel) key holds anyway.
        _, user_id = domain.event_ids(event)
        contact = self._contact(str(user_id))
        rendered = templates.render(template, event["data"], contact.name if contact else None)
        now = utcnow()
        rows = domain.notification_rows(
            event, template, rendered, contact, self.channels.sms.enabled, now
        )
        self._insert(rows, now)

    def _record_verification(self, name, event):
        """Ask users for a fresh secret and queue the one message that carries it.

        The secret never travels in the event (see users' schemas); users hands it
        over this RPC, and replaces it at each call, so a redelivered event only
        makes the newest message the one that works.
        """
        event_id, user_id = domain.event_ids(event)
        session = self.db.session
        if models.event_recorded(session, event_id):
            return
        template, channel = domain.VERIFICATION_FOR_EVENT[("users", name)]
        try:
            issued = self.users.issue_verification(str(user_id), channel)
        except NotFound:
            log.warning("verification for unknown user %s not sent", user_id)
            return
        if issued is None:
            return  # proven meanwhile, or the phone was removed: nothing to send
        settings = self.config["AGORA"]["services"]["notifications"]
        data = {"expires_at": issued["expires_at"]}
        if channel == "email":
            data["link"] = f"{settings['verify_email_url']}?token={issued['secret']}"
        else:
            data["code"] = issued["secret"]
        rendered = templates.render(template, data, issued.get("name"))
        now = utcnow()
        row = domain.verification_row(
            event, template, issued, rendered, self.channels.sms.enabled, now
        )
        self._insert([row], now)

    def _insert(self, rows, now):
        """Insert an event's rows, capped per recipient; wake the sender if any is due."""
        session = self.db.session
        settings = self.config["AGORA"]["services"]["notifications"]
        queued = [r for r in rows if r["status"] == domain.QUEUED]
        recent = models.recent_per_recipient(
            session,
            [domain.recipient_key(r["channel"], r["recipient"]) for r in queued],
            now - datetime.timedelta(hours=1),
        )
        domain.apply_cap(rows, recent, settings["max_per_recipient_per_hour"])
        for row in rows:
            if row["status"] == domain.SUPPRESSED:
                log.warning(
                    "notification %s to a %s recipient suppressed: %s",
                    row["id"],
                    row["channel"],
                    domain.OVER_CAP,
                )
        inserted = set(models.insert_notifications(session, rows))
        for row in rows:
            if row["id"] in inserted and row["status"] == domain.FAILED:
                self._dispatch_failed(row, row["last_error"])
            if row["id"] in inserted and row["status"] != domain.QUEUED:
                # Never sent: suppressed over the cap, skipped, failed at once.
                self.db.on_commit(_sends(row["channel"], row["status"]).inc)
        if any(row["id"] in inserted and row["status"] == domain.QUEUED for row in rows):
            self.db.on_commit(self.wake_sender)

    def _contact(self, user_id):
        """The user's Contact, None if the users service does not know them.

        Any other failure (users down, slow, erroring) raises, so the event is
        redelivered later instead of being recorded without a recipient.
        """
        contact = self.contacts.get(user_id)
        if contact is not None:
            return contact
        try:
            user = self.users.get_user(user_id)
        except NotFound:
            log.warning("notification for unknown user %s not sent", user_id)
            return None
        contact = domain.contact_from_user(user)
        self.contacts.put(user_id, contact)
        return contact

    # --- sending ----------------------------------------------------------------

    @send_loop("send_interval")
    def send_due(self):
        """Send the due notifications (one batch); returns in how many seconds
        the next queued row is due (None: none is queued)."""
        settings = self.config["AGORA"]["services"]["notifications"]
        max_attempts = settings["max_attempts"]
        margin = domain.claim_margin(settings["smtp"]["timeout"], settings["sms"]["timeout"])
        now = utcnow()
        with self.db.get_session(close_on_exit=True) as claim:  # commits on exit
            claimed = models.claim_due(
                claim, now, SEND_BATCH, now + datetime.timedelta(seconds=margin), max_attempts
            )
            attempts = dict(claimed)
            notes = [
                {
                    "id": row.id,
                    "user_id": row.user_id,
                    "channel": row.channel,
                    "template": row.template,
                    "recipient": row.recipient,
                    "subject": row.subject,
                    "body": row.body,
                    "attempts": attempts[row.id],
                }
                for row in models.get_notifications(claim, list(attempts))
            ]
        if notes:
            # No transaction is open here: the rows are ours until the margin passes.
            pool = eventlet.GreenPool(len(notes))
            limit = margin - 5.0
            results = list(pool.imap(lambda n: _deliver(self.channels, n, limit), notes))
            for note, (error, permanent) in zip(notes, results, strict=True):
                self._record_outcome(note, error, permanent, settings)
        self._give_up_exhausted(max_attempts)
        if len(claimed) == SEND_BATCH:
            self.wake_sender()  # more may be due: go on right after this batch
        due = models.next_due(self.db.session)
        return None if due is None else max(0.0, (due - utcnow()).total_seconds())

    def _record_outcome(self, note, error, permanent, settings):
        now = utcnow()
        outcome = domain.after_send(
            note["attempts"],
            error,
            now,
            settings["max_attempts"],
            settings["backoff_base"],
            settings["backoff_max"],
            permanent=permanent,
        )
        scrub = note["template"] in domain.VERIFICATION_TEMPLATES
        if not models.record_outcome(
            self.db.session, note["id"], note["attempts"], outcome, now, scrub=scrub
        ):
            return  # taken over by another sender after the claim margin
        counted = outcome.status if outcome.status in (domain.SENT, domain.FAILED) else RETRY
        self.db.on_commit(_sends(note["channel"], counted).inc)
        if outcome.status == domain.SENT:
            self.dispatch("notification_sent", _note_event(note))
        elif outcome.status == domain.FAILED:
            log.warning("notification %s failed for good: %s", note["id"], outcome.last_error)
            self._dispatch_failed(note, outcome.last_error)
        else:
            log.info(
                "notification %s: try %d failed (%s), next at %s",
                note["id"],
                note["attempts"],
                outcome.last_error,
                outcome.next_attempt_at,
            )

    def _give_up_exhausted(self, max_attempts):
        """Rows whose last try never reported back (a sender died) and have no tries left."""
        now = utcnow()
        for row in models.exhausted_due(self.db.session, now, max_attempts, SEND_BATCH):
            row.status = domain.FAILED
            row.next_attempt_at = None
            row.last_error = row.last_error or "gave up: the last try never reported back"
            row.updated_at = now
            self.db.on_commit(_sends(row.channel, domain.FAILED).inc)
            self._dispatch_failed(
                {
                    "id": row.id,
                    "user_id": row.user_id,
                    "channel": row.channel,
                    "template": row.template,
                },
                row.last_error,
            )

    def _dispatch_failed(self, note, error):
        self.dispatch("notification_failed", _note_event(note, error=domain.short_error(error)))

    # --- queries ----------------------------------------------------------------

    @rpc
    def list_notifications(self, user_id, limit=domain.LIMIT_DEFAULT, cursor=None):
        """A user's notifications, newest first, ``limit`` per page (keyset cursor)."""
        arguments = {"user_id": user_id, "limit": limit, "cursor": cursor}
        validate(
            LIST_QUERY,
            {k: v for k, v in arguments.items() if v is not None},
            "invalid notification query",
        )
        uid = domain.parse_user_id(user_id)
        limit = domain.LIMIT_DEFAULT if limit is None else limit
        settings = self.config["AGORA"]["services"]["notifications"]
        listing = domain.listing_cursors(cursors.signing_key(settings["cursor_key"]))
        after = listing.decode(cursor) if cursor is not None else None
        rows = models.user_notifications(self.db.session, uid, after, limit + 1)
        items, next_cursor = listing.page(rows, limit)
        return {"items": [domain.notification_view(r) for r in items], "next_cursor": next_cursor}
