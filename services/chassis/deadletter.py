"""Retries with backoff, and dead letters, for event handlers.

When a handler fails, its message is not requeued at once (a poison message
would spin) nor dropped (Nameko's default). It is republished, with publisher
confirms, to a delay queue of its handler queue: ``<queue>.backoff-<ms>``, whose
messages expire after ``ms`` and are dead-lettered by RabbitMQ back to the
handler queue. After ``events.max_attempts`` failed deliveries the message is
moved to the service's dead-letter queue, ``<service>.dead-letters``, with
headers saying where it came from and why it failed.

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

from services.chassis.outbox import ConfirmingChannel

log = logging.getLogger(__name__)

ATTEMPTS = "x-agora-attempts"
OUTAGES = "x-agora-outages"
ORIGIN_QUEUE = "x-agora-queue"
ERROR = "x-agora-error"
FAILED_AT = "x-agora-failed-at"
# The longest delay queue idles this long after its last message before it goes.
_DELAY_QUEUE_IDLE_MS = 600_000


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

        An ``outage`` (a dependency down, not a bad message) is retried with the
        same backoff without using up ``max_attempts``, up to ``outage_retries``
        times: an outage longer than the attempts' backoff must not dead-letter
        every event that arrived meanwhile (the chaos suite saw a 20 s users
        outage dead-letter notifications' order events).

        Returns ``"retry"`` or ``"dead-letter"``; raises if it could not be
        republished (the caller then requeues the original)."""
        headers = dict(message.headers or {})
        attempt = int(headers.get(ATTEMPTS, 0))
        outages = int(headers.get(OUTAGES, 0))
        if outage and outages < self.settings["outage_retries"]:
            outages += 1
            headers[OUTAGES] = outages
            delay_attempt = outages
        else:
            attempt += 1
            delay_attempt = attempt
        headers[ATTEMPTS] = attempt
        headers[ORIGIN_QUEUE] = queue_name
        headers[ERROR] = describe_error(exc_info)
        headers[FAILED_AT] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if attempt >= self.settings["max_attempts"]:
            target = dead_letter_queue(self.service)
            outcome = "dead-letter"
        else:
            delay_ms = int(retry_delay(delay_attempt, self.settings) * 1000)
            name = f"{queue_name}.backoff-{delay_ms}"
            target = Queue(
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
            outcome = "retry"
        with self.lock:
            self._publish(message, queue_name, target, headers)
        return outcome

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
