"""Consuming a service's events in a gateway process, on a connection of its own.

The gateway's RPC client (``gateway/rpc.py``) never sees these: one background
thread per process holds its own AMQP connection and an exclusive, auto-deleted
queue bound to ``<source>.events`` for the event types it wants. The queue
lives exactly as long as the connection, so events published while it is down
are not replayed: the callback ``on_live(False)`` says so, and whoever relies
on the events (the catalog cache) must stop trusting what it holds until
``on_live(True)``, which comes only once the queue is bound and consumed.

The broker user is the gateway's (``agora/broker.py`` allows it to declare,
bind and read ``gateway.<source>-events-<hex>`` queues, bound only to the event
types listed in ``GATEWAY_EVENTS``, and to declare the source's exchange but
never publish to it).
"""

import logging
import os
import threading
import uuid

from kombu import Connection, Exchange, Queue, binding

log = logging.getLogger(__name__)

# Heartbeats detect a silent broker (no close frame) within about two intervals.
HEARTBEAT = 10
# Reconnection delay: from the first value, doubling up to the second.
RETRY_DELAYS = (0.5, 10.0)
# Seconds one drain waits before checking heartbeats and the stop flag.
DRAIN_TIMEOUT = 1.0


def queue_name(source):
    """A fresh queue name per connection: ``gateway.<source>-events-<32 hex>``."""
    return f"gateway.{source}-events-{uuid.uuid4().hex}"


class EventListener:
    """``EventListener(uri, "catalog", ("product_created",), on_event, on_live)``.

    ``on_event(event_type, envelope)`` runs on the listener's thread for each
    event; ``on_live(bool)`` when consuming starts and stops."""

    def __init__(self, amqp_uri, source, event_types, on_event, on_live):
        self.amqp_uri = amqp_uri
        self.source = source
        self.event_types = tuple(event_types)
        self.on_event = on_event
        self.on_live = on_live
        self.started = False
        # Consuming sessions so far (a test waits for the next one).
        self.sessions = 0
        self.connection_name = None
        self._start_lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = None

    def start(self):
        with self._start_lock:
            if self.started:
                return
            self.started = True
            self._thread = threading.Thread(
                target=self._run, name=f"{self.source}-events", daemon=True
            )
            self._thread.start()

    def stop(self, timeout=5.0):
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        delay, failures = RETRY_DELAYS[0], 0
        while not self._stopped.is_set():
            sessions = self.sessions
            try:
                self._consume()
            except Exception as exc:  # any broker or network failure: reconnect
                if self.sessions != sessions:  # it was consuming: a new outage
                    delay, failures = RETRY_DELAYS[0], 0
                # One warning per outage; the retries that follow at debug level.
                log.log(
                    logging.WARNING if failures == 0 else logging.DEBUG,
                    "%s events: not consuming (%s: %s), retrying every %.1f-%.0f s",
                    self.source,
                    exc.__class__.__name__,
                    exc,
                    *RETRY_DELAYS,
                )
                failures += 1
            finally:
                self.on_live(False)
            self._stopped.wait(delay)
            delay = min(delay * 2, RETRY_DELAYS[1])

    def _consume(self):
        """Consume until stopped, or until an error (raised)."""
        name = queue_name(self.source)
        # Declared (as its service declares it) so the queue can be bound before
        # the service's first event, like a Nameko handler does.
        exchange = Exchange(f"{self.source}.events", type="topic", durable=True)
        queue = Queue(
            name,
            bindings=[binding(exchange, routing_key=event_type) for event_type in self.event_types],
            exclusive=True,
            auto_delete=True,
        )
        # Named, so an operator (or a test) can find and close it.
        self.connection_name = f"{name} pid {os.getpid()}"
        with Connection(
            self.amqp_uri,
            heartbeat=HEARTBEAT,
            connect_timeout=5,
            transport_options={"client_properties": {"connection_name": self.connection_name}},
        ) as connection:
            connection.connect()
            # No acks: the queue dies with the connection anyway, so an
            # unacknowledged event could never be redelivered to anyone.
            with connection.Consumer(
                queue, callbacks=[self._on_message], accept=["json"], no_ack=True
            ):
                # Bound and consuming: from here on no event is missed.
                self.sessions += 1
                self.on_live(True)
                while not self._stopped.is_set():
                    try:
                        connection.drain_events(timeout=DRAIN_TIMEOUT)
                    except TimeoutError:
                        connection.heartbeat_check()

    def _on_message(self, body, message):
        self.on_event(message.delivery_info.get("routing_key"), body)
