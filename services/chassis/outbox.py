"""The outbox relay: publishes committed events, with publisher confirms.

One relay runs in every service process that emits events. It is woken right
after each commit that wrote outbox rows and also polls every
``events.relay_interval`` seconds, so after a crash or a broker outage it
catches up on start. Each pass claims a batch of unsent rows in ``seq`` order
(``FOR UPDATE SKIP LOCKED``, so replicas share the work), publishes them all,
waits once for the broker's confirms, then marks the confirmed rows sent in
one statement of the same transaction.

Delivery is at least once: a crash after the broker confirmed but before the
mark committed publishes those rows again, and the receivers' inboxes drop the
duplicates. Order is per relay pass; consumers must not rely on a global order
across replicas (the saga does not).
"""

import logging
import time

import eventlet
from eventlet.event import Event
from kombu import Connection, Producer
from sqlalchemy import text

from services.chassis.metrics import OUTBOX_PUBLISH_DURATION, OUTBOX_PUBLISHED

log = logging.getLogger(__name__)

_CLAIM = text(
    """
    SELECT seq, event_type, envelope, headers FROM outbox_events
    WHERE published_at IS NULL
    ORDER BY seq
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
_MARK = text("UPDATE outbox_events SET published_at = now() WHERE seq = ANY(:seqs)")
_PRUNE_OUTBOX = text(
    """
    DELETE FROM outbox_events WHERE seq IN (
        SELECT seq FROM outbox_events
        WHERE published_at < now() - make_interval(secs => :age)
        LIMIT 5000)
    """
)
_PRUNE_INBOX = text(
    """
    DELETE FROM inbox_events WHERE ctid IN (
        SELECT ctid FROM inbox_events
        WHERE processed_at < now() - make_interval(secs => :age)
        LIMIT 5000)
    """
)
_BACKLOG = text("SELECT count(*), min(created_at) FROM outbox_events WHERE published_at IS NULL")
PRUNE_EVERY = 300.0
# How long a batch waits for the broker's confirms before it counts as failed.
CONFIRM_TIMEOUT = 30.0


def release_quietly(connection):
    """Release a kombu connection (None allowed) that may already be broken."""
    if connection is not None:
        try:
            connection.release()
        except Exception:  # already broken: nothing left to close
            pass


class ConfirmingChannel:
    """A channel on a broker connection of its own, in publisher-confirm mode: a
    publish on it returns once the broker has taken the message (or raises).

    Opened on first use; ``use()`` drops it after any error, and the next use
    reconnects."""

    def __init__(self, amqp_uri):
        self.amqp_uri = amqp_uri
        self.connection = None
        self.channel = None

    def opened(self):
        """(channel, True if it was opened just now)."""
        if self.channel is not None:
            return self.channel, False
        self.connection = Connection(
            self.amqp_uri, transport_options={"confirm_publish": True}, connect_timeout=5
        )
        self.channel = self.connection.channel()
        return self.channel, True

    def use(self, action):
        """``action(channel, fresh)``; on any error the connection is dropped."""
        try:
            return action(*self.opened())
        except Exception:
            self.close()
            raise

    def close(self):
        release_quietly(self.connection)
        self.connection = None
        self.channel = None


class ConfirmingPublisher:
    """Publishes batches to one exchange on a connection of its own, in
    publisher-confirm mode, waiting once for the confirms of a whole batch.

    One confirm round trip per event was a fifth of the orders service's CPU:
    the broker confirms a stream of publishes with few (often cumulative)
    acks, and what it confirmed is safe whatever happens next. The connection
    is opened on first use and dropped after any failure, since its delivery
    tags then no longer match what was sent."""

    def __init__(self, amqp_uri, exchange, confirm_timeout=CONFIRM_TIMEOUT):
        self.amqp_uri = amqp_uri
        self.exchange = exchange  # the service's events exchange (nameko's declaration)
        self.confirm_timeout = confirm_timeout
        self.connection = None
        self.producer = None
        self._next_tag = 1
        self._unconfirmed = {}  # delivery tag -> index in the batch
        self._acked = []
        self._nacked = []

    def _open(self):
        if self.producer is not None:
            return
        self.connection = Connection(self.amqp_uri, connect_timeout=5)
        channel = self.connection.channel()
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        exchange = self.exchange(channel)
        exchange.declare()
        self.producer = Producer(channel, exchange=exchange, auto_declare=False)
        self._next_tag = 1  # the broker numbers a channel's publishes from 1

    def publish_all(self, messages):
        """Publish ``(routing_key, envelope, headers)`` messages in order.

        Returns ``(confirmed, error)``: the indexes of the messages the broker
        confirmed, and the exception that stopped the rest (None if all were
        confirmed). A message not confirmed may or may not have gone out."""
        self._unconfirmed, self._acked, self._nacked = {}, [], []
        try:
            self._open()
            for index, (routing_key, envelope, headers) in enumerate(messages):
                self.producer.publish(
                    envelope,
                    routing_key=routing_key,
                    serializer="json",
                    headers=headers,
                    delivery_mode=2,
                    retry=False,
                )
                self._unconfirmed[self._next_tag] = index
                self._next_tag += 1
            deadline = time.monotonic() + self.confirm_timeout
            while self._unconfirmed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no publisher confirm in {self.confirm_timeout} s")
                self.connection.drain_events(timeout=remaining)
        except Exception as exc:
            self.close()
            return sorted(self._acked), exc
        if self._nacked:
            return sorted(self._acked), NackedByBroker(f"{len(self._nacked)} event(s) refused")
        return sorted(self._acked), None

    def _settle(self, tag, multiple, into):
        tags = [t for t in self._unconfirmed if t <= tag] if multiple else [tag]
        for settled in tags:
            index = self._unconfirmed.pop(settled, None)
            if index is not None:
                into.append(index)

    def _on_ack(self, tag, multiple):
        self._settle(tag, multiple, self._acked)

    def _on_nack(self, tag, multiple):
        self._settle(tag, multiple, self._nacked)

    def close(self):
        release_quietly(self.connection)
        self.connection = None
        self.producer = None


class NackedByBroker(Exception):
    """The broker refused to take some published events (basic.nack)."""


class OutboxRelay:
    """Publishes a service's outbox; ``wake()`` after a commit, ``stop()`` on shutdown."""

    def __init__(self, engine, publisher, settings, service=None):
        self.engine = engine
        self.publisher = publisher
        self.batch = settings["relay_batch"]
        self.interval = settings["relay_interval"]
        self.outbox_retention = settings["outbox_retention"]
        self.inbox_retention = settings["inbox_retention"]
        self._event = Event()
        self._running = False
        self._stopping = False
        self._finished = Event()
        self._last_prune = 0.0
        self.last_error = None
        self.published = 0
        # Metrics of the service (None: not counted, e.g. a relay in a tool).
        self._publish_seconds = OUTBOX_PUBLISH_DURATION.labels(service) if service else None
        self._published_total = OUTBOX_PUBLISHED.labels(service) if service else None

    def wake(self):
        if not self._event.ready():
            self._event.send(True)

    def run(self):
        """The relay loop; returns after ``stop()``, once its last batch is done."""
        self._running = True
        try:
            self._loop()
        finally:
            self._running = False
            self._finished.send(True)

    def _loop(self):
        backoff = self.interval
        while True:
            try:
                sent = self.publish_batch()
                self.last_error = None
                backoff = self.interval
            except Exception as exc:  # broker or database down: keep trying
                sent = 0
                if self.last_error is None:
                    log.warning("outbox relay cannot publish (will retry): %s", exc)
                self.last_error = exc
                backoff = min(backoff * 2, 30.0)
            if self._stopping:
                return
            if sent >= self.batch:
                eventlet.sleep(0)  # more waiting: go again at once
                continue
            self._maybe_prune()
            with eventlet.Timeout(backoff if self.last_error else self.interval, False):
                self._event.wait()
            self._event = Event()

    def stop(self):
        """End the loop: the batch being published is finished (its rows marked
        sent), then one more batch takes what the service's last workers
        committed; what is left stays in the outbox for the next relay. Waits
        for that (the service's shutdown_timeout bounds the whole stop)."""
        self._stopping = True
        self.wake()
        if self._running:
            self._finished.wait()
        self.publisher.close()

    def kill(self):
        """End at once: a batch cut short stays unsent, published again later."""
        self._stopping = True
        self.wake()
        self.publisher.close()

    def publish_batch(self):
        """Publish up to one batch of unsent events; return how many were sent."""
        with self.engine.connect() as conn:
            rows = conn.execute(_CLAIM, {"limit": self.batch}).all()
            if not rows:
                conn.rollback()
                return 0
            started = time.perf_counter()
            confirmed, error = self.publisher.publish_all(
                [(event_type, envelope, headers or {}) for _, event_type, envelope, headers in rows]
            )
            if self._publish_seconds is not None:
                self._publish_seconds.observe(time.perf_counter() - started)
            # Whatever was confirmed is marked, even if others failed; those
            # stay unsent and the next pass publishes them again.
            sent = [rows[index][0] for index in confirmed]
            if sent:
                conn.execute(_MARK, {"seqs": sent})
                conn.commit()
                self.published += len(sent)
                if self._published_total is not None:
                    self._published_total.inc(len(sent))
            if error is not None:
                raise error
            return len(sent)

    def backlog(self):
        """(unsent events, age in seconds of the oldest one)."""
        with self.engine.connect() as conn:
            count, oldest = conn.execute(_BACKLOG).one()
        if oldest is None:
            return 0, 0.0
        age = time.time() - oldest.timestamp()
        return count, age

    def _maybe_prune(self):
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        try:
            with self.engine.begin() as conn:
                conn.execute(_PRUNE_OUTBOX, {"age": self.outbox_retention})
                conn.execute(_PRUNE_INBOX, {"age": self.inbox_retention})
        except Exception as exc:
            log.warning("outbox/inbox pruning failed: %s", exc)
