"""Retries with backoff, and dead letters, for event handlers.

When a handler fails, its message is not requeued at once (a poison message
would spin) nor dropped (Nameko's default). It is republished, with publisher
confirms, to a delay queue of its handler queue: ``<queue>.backoff-<ms>``, whose
messages expire after ``ms`` and are dead-lettered by RabbitMQ back to the
handler queue. After ``events.max_attempts`` failed deliveries the message is
moved to the service's dead-letter queue, ``<service>.dead-letters``, with
headers saying where it came from and why it failed.

A handler that failed with ``Unavailable`` (a service it asked is down,
restarting or behind an open circuit; its own database unreachable) is waiting
for an outage, not failing on the message: for ``events.outage_retry_window``
seconds from its first such failure it is retried with the same backoff
without spending its attempts, so a restart of a service does not dead-letter
the events that needed it meanwhile. Past the window, failures count as usual.

All of it goes through the service's own direct exchange ``<service>.retry``
(delay queues, the dead-letter queue and, for the way back, the handler queues
are bound to it by name), never the default exchange: a service's broker user
may not publish there (``agora/broker.py``), because the default exchange
reaches every queue, other services' handler queues included. ``DeadLetterQueue``
lists, shows, replays and discards them: each service answers for its own
over RPC (``GET /v1/ops/dead-letters``), the operator's CLI reads them directly
(``agora.deadletters``, ``make shell``).

Only once the republish is confirmed is the original acked; if the republish
fails, the original is requeued, so a message is never lost on this path.
"""

import datetime
import hashlib
import json
import logging
import time
import traceback

from eventlet.semaphore import Semaphore
from kombu import Connection, Exchange, Producer, Queue

from services.chassis.errors import Unavailable
from services.chassis.outbox import ConfirmingChannel
from services.chassis.schemas import DEAD_LETTER_ID_PATTERN, pattern_matches

log = logging.getLogger(__name__)

ATTEMPTS = "x-agora-attempts"
ORIGIN_QUEUE = "x-agora-queue"
ERROR = "x-agora-error"
FAILED_AT = "x-agora-failed-at"
# The first Unavailable failure of this message (epoch seconds), and how many
# retries it has had since, not counted in ATTEMPTS.
OUTAGE_SINCE = "x-agora-outage-since"
OUTAGE_RETRIES = "x-agora-outage-retries"
# The longest delay queue idles this long after its last message before it goes.
_DELAY_QUEUE_IDLE_MS = 600_000
# What handle_failure did with a message.
RETRY = "retry"
DEAD_LETTER = "dead-letter"


def dead_letter_queue_name(service):
    return f"{service}.dead-letters"


def retry_delay(attempt, settings):
    """Seconds before delivery number ``attempt + 1``: base * 2^(attempt-1), capped."""
    delay = settings["backoff_base"] * (2 ** max(attempt - 1, 0))
    return min(delay, settings["backoff_max"])


def describe_error(exc_info):
    """One line for the header: ``Class: message`` (at most 1,000 characters)."""
    exc = exc_info[1]
    line = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return line[:1000]


def retry_exchange(service):
    """The service's own exchange for delayed retries and dead letters."""
    return Exchange(f"{service}.retry", type="direct", durable=True)


def dead_letter_queue(service):
    name = dead_letter_queue_name(service)
    return Queue(
        name, exchange=retry_exchange(service), routing_key=name, durable=True, auto_delete=False
    )


class RetryPublisher:
    """Moves failed messages to a delay queue or the dead-letter queue (confirmed)."""

    def __init__(self, amqp_uri, service, settings):
        self.confirming = ConfirmingChannel(amqp_uri)
        self.service = service
        self.settings = settings
        # One channel, used by one worker at a time (confirms are waited for on it).
        self.lock = Semaphore()

    def declare_dead_letter_queue(self):
        with self.lock:
            self.confirming.use(
                lambda channel, fresh: dead_letter_queue(self.service)(channel).declare()
            )

    def close(self):
        self.confirming.close()

    def handle_failure(self, message, queue_name, exc_info, outage=False):
        """Send ``message`` (which failed in the handler on ``queue_name``) on its way.
        ``outage``: the failure is the service's own database or Redis being
        unreachable, an outage as an ``Unavailable`` is.

        An outage (a dependency down, not a bad message) is retried with the
        same backoff without using up ``max_attempts``, for up to
        ``outage_retry_window`` seconds: an outage longer than the attempts'
        backoff must not dead-letter every event that arrived meanwhile (the
        chaos suite saw a 20 s users outage dead-letter notifications' order events).

        Returns ``"retry"`` or ``"dead-letter"``; raises if it could not be
        republished (the caller then requeues the original)."""
        headers = dict(message.headers or {})
        headers[ORIGIN_QUEUE] = queue_name
        headers[ERROR] = describe_error(exc_info)
        headers[FAILED_AT] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        outage_retry = self._outage_retry(headers, exc_info[1], outage)
        if outage_retry is not None:
            target, outcome = self._delay_queue(queue_name, outage_retry), RETRY
        else:
            attempt = int(headers.get(ATTEMPTS, 0)) + 1
            headers[ATTEMPTS] = attempt
            if attempt >= self.settings["max_attempts"]:
                target, outcome = dead_letter_queue(self.service), DEAD_LETTER
            else:
                target, outcome = self._delay_queue(queue_name, attempt), RETRY
        with self.lock:
            self._publish(message, queue_name, target, headers)
        return outcome

    def _outage_retry(self, headers, exc, outage=False, now=None):
        """The retry number, not counted in the attempts, of a failure that is an
        outage within ``outage_retry_window``; None for any other failure. Updates
        ``headers``."""
        if not (outage or isinstance(exc, Unavailable)):
            return None
        now = int(time.time() if now is None else now)
        since = int(headers.get(OUTAGE_SINCE, now))
        if now - since >= self.settings["outage_retry_window"]:
            return None
        retries = int(headers.get(OUTAGE_RETRIES, 0)) + 1
        headers[OUTAGE_SINCE] = since
        headers[OUTAGE_RETRIES] = retries
        return retries

    def _delay_queue(self, queue_name, retry):
        """The delay queue of ``queue_name`` for retry number ``retry``."""
        delay_ms = int(retry_delay(retry, self.settings) * 1000)
        name = f"{queue_name}.backoff-{delay_ms}"
        return Queue(
            name,
            exchange=retry_exchange(self.service),
            routing_key=name,
            durable=True,
            queue_arguments={
                "x-message-ttl": delay_ms,
                "x-dead-letter-exchange": retry_exchange(self.service).name,
                "x-dead-letter-routing-key": queue_name,
                "x-expires": delay_ms + _DELAY_QUEUE_IDLE_MS,
            },
        )

    def _publish(self, message, queue_name, target, headers):
        exchange = retry_exchange(self.service)

        def send(channel, fresh):
            # Declared every time: an idle delay queue may have expired meanwhile,
            # and a message published to a missing queue would vanish.
            target(channel).declare()
            # The way back from the delay queue: the handler queue by name.
            channel.queue_bind(queue_name, exchange.name, routing_key=queue_name)
            Producer(channel).publish(
                message.body,
                exchange=exchange.name,
                routing_key=target.name,
                headers=headers,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                delivery_mode=2,
                retry=False,
            )

        self.confirming.use(send)


# --- reading, replaying and discarding dead letters ----------------------------
# Used by the services' own RPC methods (``services.chassis.service.DeadLetterAdmin``,
# with the service's broker user: it may read only its own dead-letter queue)
# and by the operator's CLI (``agora.deadletters``, with the operator's account).

# Dead letters read per service at most by a listing, and looked through when
# one is asked for by id.
LIST_MAX = 1000
SEARCH_MAX = 10_000


def _letter_body(message):
    try:
        return json.loads(message.body)
    except (TypeError, ValueError):
        body = message.body
        if isinstance(body, bytes):
            return body.decode("utf-8", "replace")
        return body if isinstance(body, str) else repr(body)


def letter_id(envelope, body):
    """How a dead letter is named: its envelope's ``event_id``; a message that is
    no envelope (a malformed event), or whose event id could not be a path
    segment, gets ``body-<sha256 of its body, 32 hex>``,
    so that it too can be shown, replayed or discarded one by one."""
    event_id = envelope.get("event_id") if isinstance(envelope, dict) else None
    if isinstance(event_id, str) and pattern_matches(DEAD_LETTER_ID_PATTERN, event_id):
        return event_id
    raw = body if isinstance(body, bytes) else str(body).encode("utf-8", "replace")
    return "body-" + hashlib.sha256(raw).hexdigest()[:32]


def _json_safe(value):
    """Headers as JSON can carry them: RabbitMQ's ``x-death`` holds timestamps."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def letter_summary(service, message):
    """One dead letter in a few fields (the DEAD_LETTER contract)."""
    headers = message.headers or {}
    envelope = _letter_body(message)
    envelope = envelope if isinstance(envelope, dict) else {}
    attempts = headers.get(ATTEMPTS)
    return {
        "service": service,
        "event_id": letter_id(envelope, message.body),
        "type": envelope.get("type") if isinstance(envelope.get("type"), str) else None,
        "queue": _json_safe(headers.get(ORIGIN_QUEUE)),
        "attempts": attempts if isinstance(attempts, int) else None,
        "error": _json_safe(headers.get(ERROR)),
        "failed_at": _json_safe(headers.get(FAILED_AT)),
    }


class DeadLetterQueue:
    """The dead letters of one service, on a connection of ``amqp_uri``'s user.

    Listing does not consume: messages are read without an ack and go back to
    the queue when the channel closes (while one caller holds them, a
    concurrent listing does not see them). A replay publishes the message, with
    publisher confirms, through the service's ``<service>.retry`` exchange to
    the handler queue it failed on (bound there by name, as for its retries),
    its attempt count reset, and only then removes it from the dead letters.
    A service's own broker user may do all of this (``agora/broker.py``); no
    one needs the default exchange.
    """

    def __init__(self, amqp_uri, service, connect_timeout=5):
        self.amqp_uri = amqp_uri
        self.service = service
        self.connect_timeout = connect_timeout

    def _each(self, visit, limit):
        """``visit(channel, message)`` for each dead letter (unacked) until it
        returns True or ``limit`` were seen; ``visit`` may ack. The others return
        to the queue when the channel closes."""
        with Connection(
            self.amqp_uri,
            transport_options={"confirm_publish": True},
            connect_timeout=self.connect_timeout,
        ) as connection:
            channel = connection.channel()
            try:
                queue = dead_letter_queue(self.service)(channel)
                queue.declare()
                for _ in range(limit):
                    message = queue.get(no_ack=False)
                    if message is None or visit(channel, message):
                        break
            finally:
                channel.close()

    def summaries(self, limit=LIST_MAX):
        """Up to ``limit`` summaries, oldest dead letter first."""
        found = []
        self._each(
            lambda channel, message: found.append(letter_summary(self.service, message)), limit
        )
        return found

    def find(self, event_id):
        """The summary plus ``event`` (the message body, the event envelope) and
        ``headers``; None when there is no such dead letter."""
        shown = []

        def visit(channel, message):
            summary = letter_summary(self.service, message)
            if summary["event_id"] != event_id:
                return False
            headers = _json_safe(dict(message.headers or {}))
            shown.append({**summary, "event": _letter_body(message), "headers": headers})
            return True

        self._each(visit, SEARCH_MAX)
        return shown[0] if shown else None

    def replay(self, event_id=None):
        """Send dead letters (all, or the one named ``event_id``) back to their
        handler queue; how many were replayed. One without an origin queue is
        left for a human."""
        exchange = retry_exchange(self.service)
        replayed = []

        def visit(channel, message):
            summary = letter_summary(self.service, message)
            if event_id is not None and summary["event_id"] != event_id:
                return False
            queue_name = summary["queue"]
            if not isinstance(queue_name, str) or not queue_name:
                return event_id is not None
            headers = {
                k: v for k, v in (message.headers or {}).items() if not k.startswith("x-agora-")
            }
            headers.pop("x-death", None)  # RabbitMQ's record of the delay queues
            channel.queue_bind(queue_name, exchange.name, routing_key=queue_name)
            Producer(channel).publish(
                message.body,
                exchange=exchange.name,
                routing_key=queue_name,
                headers=headers,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                delivery_mode=2,
                retry=False,
            )
            message.ack()  # only after the broker confirmed the replay
            replayed.append(summary)
            return event_id is not None

        self._each(visit, SEARCH_MAX)
        return len(replayed)

    def discard(self, event_id):
        """Drop one dead letter for good; True if it was there."""
        dropped = []

        def visit(channel, message):
            if letter_summary(self.service, message)["event_id"] != event_id:
                return False
            message.ack()
            dropped.append(event_id)
            return True

        self._each(visit, SEARCH_MAX)
        return bool(dropped)
