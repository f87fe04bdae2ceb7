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
reaches every queue, other services' handler queues included. ``agora.deadletters``
lists, shows and replays them (``make shell``).

Only once the republish is confirmed is the original acked; if the republish
fails, the original is requeued, so a message is never lost on this path.
"""

import logging
import time
import traceback

from eventlet.semaphore import Semaphore
from kombu import Exchange, Producer, Queue

from services.chassis.errors import Unavailable
from services.chassis.outbox import ConfirmingChannel

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
