"""Reliable events on real RabbitMQ and PostgreSQL: the transactional outbox and
its relay, idempotent handlers (inbox), retries with backoff and dead letters."""

import uuid

import eventlet
import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import Integer, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from agora.deadletters import (
    dead_letters,
    discard_dead_letter,
    replay_dead_letters,
    show_dead_letter,
)
from services.chassis.config import database_url, nameko_config
from services.chassis.db import Database
from services.chassis.errors import Unavailable
from services.chassis.events import event_tables
from services.chassis.messaging import (
    EventContractError,
    EventDispatcher,
    event_envelope,
    event_handler,
    rpc,
)
from services.chassis.migrations import drop_database, ensure_database
from services.chassis.schemas import obj
from services.chassis.service import AgoraService
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

DB = "chassis_reliable"


class Base(DeclarativeBase):
    pass


OutboxEvent, InboxEvent = event_tables(Base)


class Effect(Base):
    """One row per handled event: what "one effect" is counted in."""

    __tablename__ = "effects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))


EVENTS = {
    "thing_happened": {
        "version": 2,
        "summary": "Something happened",
        "payload": obj({"key": {"type": "string"}}, ("key",)),
    }
}

# What the handler should do for a key: "fail" always, "once" fails on the
# first delivery only; anything else succeeds.
behaviour = {}
deliveries = {}
received = []


class EmitterService(AgoraService):
    name = "reliable_emitter"
    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)

    @rpc
    def emit(self, key, count=1):
        for _ in range(count):
            self.dispatch("thing_happened", {"key": key})
        self.db.session.add(Effect(key=f"emitted:{key}"))

    @rpc
    def emit_then_fail(self, key):
        self.dispatch("thing_happened", {"key": key})
        raise ValueError("rolled back")

    @rpc
    def emit_off_contract(self):
        self.dispatch("thing_happened", {"key": 42})

    @rpc
    def emit_unknown(self):
        self.dispatch("nothing_happened", {})


class HandlerService(AgoraService):
    name = "reliable_handler"
    db = Database(Base)

    @event_handler("reliable_emitter", "thing_happened")
    def on_thing(self, event):
        key = event["data"]["key"]
        deliveries[key] = deliveries.get(key, 0) + 1
        self.db.session.add(Effect(key=key))
        # Give a concurrent duplicate time to race for the inbox.
        eventlet.sleep(0.05)
        rule = behaviour.get(key)
        if rule == "fail" or (rule == "once" and deliveries[key] == 1):
            raise RuntimeError(f"handler refuses {key}")
        if isinstance(rule, int) and deliveries[key] <= rule:  # a dependency down that long
            raise Unavailable(f"a dependency of {key} is down")


class RelayingService(AgoraService):
    """Fails a key's first delivery, then emits an event of its own: the retried
    message comes back from a retry queue with RabbitMQ's x-death header (AMQP
    timestamps) and the chassis's x-agora-* headers."""

    name = "reliable_relaying"
    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)

    @event_handler("reliable_emitter", "thing_happened")
    def on_thing(self, event):
        key = event["data"]["key"]
        seen = deliveries[f"relay:{key}"] = deliveries.get(f"relay:{key}", 0) + 1
        if seen == 1:
            raise RuntimeError(f"first delivery of {key} fails")
        self.dispatch("thing_happened", {"key": f"relayed:{key}"})
        self.db.session.add(Effect(key=f"relayed:{key}"))


class ListenerService(AgoraService):
    """No database: sees every event as published."""

    name = "reliable_listener"

    @event_handler("reliable_emitter", "thing_happened")
    def on_thing(self, event):
        received.append(event)


@pytest.fixture(scope="module")
def engine(config):
    ensure_database(config, DB)
    engine = create_engine(database_url(config, DB))
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
    drop_database(config, DB)


def settings_for(config, name):
    settings = nameko_config(config, name)
    settings["DB_URIS"] = {f"{name}:Base": database_url(config, DB)}
    return settings


@pytest.fixture
def start(container_factory, config, rabbit_vhost, engine):
    def start(cls):
        container = container_factory(cls, settings_for(config, cls.name))
        container.start()
        return container

    return start


@pytest.fixture
def proxy(config, rabbit_vhost):
    with ClusterRpcProxy(nameko_config(config, "tests"), timeout=10) as proxy:
        yield proxy


def effects(engine, key):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(Effect.key == key)).scalar()


def unsent(engine):
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        ).scalar()


def publish(config, envelope):
    event_dispatcher(nameko_config(config, "tests"))("reliable_emitter", "thing_happened", envelope)


# --- the outbox --------------------------------------------------------------


def test_an_event_is_written_with_the_change_and_published_after_commit(start, proxy, engine):
    start(EmitterService)
    start(ListenerService)
    key = uuid.uuid4().hex
    proxy.reliable_emitter.emit(key)
    wait_until(lambda: any(e["data"]["key"] == key for e in received), what="the event")
    event = next(e for e in received if e["data"]["key"] == key)
    assert event["type"] == "reliable_emitter.thing_happened"
    assert event["version"] == 2
    with engine.connect() as conn:
        row = conn.execute(
            select(OutboxEvent).where(OutboxEvent.event_id == uuid.UUID(event["event_id"]))
        ).one()
    assert row.envelope == event
    wait_until(lambda: unsent(engine) == 0, what="the row marked sent")


def test_a_rolled_back_change_writes_and_publishes_no_event(start, proxy, engine):
    start(EmitterService)
    start(ListenerService)
    key = uuid.uuid4().hex
    with pytest.raises(RemoteError):
        proxy.reliable_emitter.emit_then_fail(key)
    with engine.connect() as conn:
        rows = conn.execute(
            select(func.count()).where(OutboxEvent.envelope["data"]["key"].astext == key)
        ).scalar()
    assert rows == 0
    proxy.reliable_emitter.emit("after")  # a later event does arrive, this one never
    wait_until(lambda: any(e["data"]["key"] == "after" for e in received))
    assert not any(e["data"]["key"] == key for e in received)


def test_events_committed_while_no_relay_ran_are_published_when_it_starts(
    start, proxy, engine, config
):
    """A crash between commit and publish: the rows wait in the outbox, and the
    relay of the restarted service publishes them."""
    start(ListenerService)
    keys = [uuid.uuid4().hex for _ in range(3)]
    with engine.begin() as conn:
        for key in keys:
            envelope = event_envelope("reliable_emitter", "thing_happened", {"key": key}, 2)
            conn.execute(
                OutboxEvent.__table__.insert().values(
                    event_id=uuid.UUID(envelope["event_id"]),
                    event_type="thing_happened",
                    envelope=envelope,
                    headers={},
                )
            )
    assert unsent(engine) >= 3
    start(EmitterService)
    wait_until(
        lambda: {e["data"]["key"] for e in received} >= set(keys), what="the backlog published"
    )
    wait_until(lambda: unsent(engine) == 0, what="the backlog marked sent")


def test_a_stopping_service_publishes_what_was_committed_before_it_exits(start, engine):
    """Graceful shutdown: the relay's last batch takes the events committed up to
    the stop (by the last workers), so none waits for the next start."""
    emitter = start(EmitterService)
    wait_until(lambda: unsent(engine) == 0, what="earlier events published")
    with engine.begin() as conn:
        for n in range(3):
            envelope = event_envelope("reliable_emitter", "thing_happened", {"key": f"k{n}"}, 2)
            conn.execute(
                OutboxEvent.__table__.insert().values(
                    event_id=uuid.UUID(envelope["event_id"]),
                    event_type="thing_happened",
                    envelope=envelope,
                    headers={},
                )
            )

    emitter.stop()

    assert unsent(engine) == 0


def test_an_event_outside_the_contract_is_refused_and_nothing_is_written(start, proxy, engine):
    start(EmitterService)
    before = unsent(engine)
    with pytest.raises(RemoteError) as excinfo:
        proxy.reliable_emitter.emit_off_contract()
    assert "does not match its contract" in str(excinfo.value)
    with pytest.raises(RemoteError) as excinfo:
        proxy.reliable_emitter.emit_unknown()
    assert "is not in the service's EVENTS" in str(excinfo.value)
    assert unsent(engine) == before
    assert EventContractError.__name__ in str(excinfo.value)


# --- idempotent handlers -------------------------------------------------------


def test_the_same_event_delivered_twice_has_one_effect(start, config, engine):
    start(HandlerService)
    key = uuid.uuid4().hex
    envelope = event_envelope("reliable_emitter", "thing_happened", {"key": key}, 2)
    publish(config, envelope)
    wait_until(lambda: effects(engine, key) == 1, what="the first delivery")
    publish(config, envelope)
    wait_until(lambda: deliveries.get(key) == 1 and _inbox_has(engine, envelope))
    eventlet.sleep(0.5)  # give the duplicate every chance to be handled
    assert effects(engine, key) == 1


def test_concurrent_duplicates_have_one_effect(start, config, engine):
    start(HandlerService)
    key = uuid.uuid4().hex
    envelope = event_envelope("reliable_emitter", "thing_happened", {"key": key}, 2)
    for _ in range(5):
        publish(config, envelope)
    wait_until(lambda: effects(engine, key) == 1, what="one effect")
    eventlet.sleep(0.5)
    assert effects(engine, key) == 1


def _inbox_has(engine, envelope):
    with engine.connect() as conn:
        return (
            conn.execute(
                select(InboxEvent.consumer).where(
                    InboxEvent.event_id == uuid.UUID(envelope["event_id"])
                )
            ).scalar()
            == "reliable_handler.on_thing"
        )


# --- retries and dead letters --------------------------------------------------


def test_a_failing_handler_is_retried_with_backoff_and_then_succeeds(start, config, engine):
    start(HandlerService)
    key = uuid.uuid4().hex
    behaviour[key] = "once"
    publish(config, event_envelope("reliable_emitter", "thing_happened", {"key": key}, 2))
    wait_until(lambda: effects(engine, key) == 1, what="the retried delivery")
    assert deliveries[key] == 2  # the first one rolled back, its effect with it


def test_a_retried_handler_can_emit_events(start, config, engine):
    """The retry's delivery headers (x-death holds datetimes) stay out of the
    events the handler emits: they used to fail the outbox insert every time."""
    start(RelayingService)
    key = uuid.uuid4().hex
    publish(config, event_envelope("reliable_emitter", "thing_happened", {"key": key}, 2))
    wait_until(lambda: effects(engine, f"relayed:{key}") == 1, what="the relayed event")
    assert deliveries[f"relay:{key}"] == 2
    with engine.connect() as conn:
        (headers,) = conn.execute(
            select(OutboxEvent.headers).where(
                OutboxEvent.envelope["data"]["key"].as_string() == f"relayed:{key}"
            )
        ).one()
    assert not [name for name in headers if "x-" in name], headers


def test_a_poison_message_is_dead_lettered_and_can_be_replayed(start, config, engine):
    container = start(HandlerService)
    key = uuid.uuid4().hex
    behaviour[key] = "fail"
    envelope = event_envelope("reliable_emitter", "thing_happened", {"key": key}, 2)
    publish(config, envelope)
    attempts = config["events"]["max_attempts"]

    def dead():
        return [d for d in dead_letters(config, "reliable_handler") if d["event_id"] == key_id]

    key_id = envelope["event_id"]
    wait_until(lambda: dead(), what="the dead letter")
    assert deliveries[key] == attempts
    assert effects(engine, key) == 0  # every failed attempt was rolled back
    letter = dead()[0]
    assert letter["attempts"] == attempts
    assert letter["type"] == "reliable_emitter.thing_happened"
    assert letter["queue"] == "evt-reliable_emitter-thing_happened--reliable_handler.on_thing"
    assert "RuntimeError: handler refuses" in letter["error"]
    shown = show_dead_letter(config, "reliable_handler", key_id)
    assert shown["event"] == envelope
    # Listing does not consume.
    assert dead()

    # The bug is fixed; the operator replays the message.
    behaviour[key] = "ok"
    assert replay_dead_letters(config, "reliable_handler", key_id) == 1
    wait_until(lambda: effects(engine, key) == 1, what="the replayed event handled")
    assert not dead()
    assert container  # still running


def test_an_outage_longer_than_the_attempts_dead_letters_nothing(start, config, engine):
    """A handler that fails because a dependency is down (Unavailable) twice as
    many times as max_attempts is retried until it succeeds: an outage is not a
    poison message."""
    start(HandlerService)
    key = uuid.uuid4().hex
    failures = 2 * config["events"]["max_attempts"]
    behaviour[key] = failures
    envelope = event_envelope("reliable_emitter", "thing_happened", {"key": key}, 2)
    publish(config, envelope)
    wait_until(
        lambda: effects(engine, key) == 1, timeout=60, what="the event handled after the outage"
    )
    assert deliveries[key] == failures + 1
    assert not [
        d for d in dead_letters(config, "reliable_handler") if d["event_id"] == envelope["event_id"]
    ]


def test_a_dead_letter_can_be_discarded(start, config):
    start(HandlerService)
    key = uuid.uuid4().hex
    behaviour[key] = "fail"
    envelope = event_envelope("reliable_emitter", "thing_happened", {"key": key}, 2)
    publish(config, envelope)
    wait_until(
        lambda: any(
            d["event_id"] == envelope["event_id"] for d in dead_letters(config, "reliable_handler")
        ),
        what="the dead letter",
    )
    assert discard_dead_letter(config, "reliable_handler", envelope["event_id"]) is True
    assert not any(
        d["event_id"] == envelope["event_id"] for d in dead_letters(config, "reliable_handler")
    )
    assert discard_dead_letter(config, "reliable_handler", envelope["event_id"]) is False


def test_a_message_that_is_no_envelope_is_dead_lettered(start, config):
    start(HandlerService)
    marker = uuid.uuid4().hex
    publish(config, {"not": "an envelope", "marker": marker})
    wait_until(
        lambda: any(
            "MalformedEvent" in (d["error"] or "") and marker in (d["error"] or "")
            for d in dead_letters(config, "reliable_handler")
        ),
        what="the malformed message dead-lettered",
    )


def test_the_relay_reports_its_backlog(start, engine):
    container = start(EmitterService)
    dispatcher = next(d for d in container.dependencies if isinstance(d, EventDispatcher))
    count, age = dispatcher.relay.backlog()
    assert count == unsent(engine)
    assert age >= 0


# --- the relay's publisher -----------------------------------------------------


@pytest.fixture
def bound_queue(config, rabbit_vhost):
    """(events exchange factory, queue name): a topic exchange of its own with one
    queue taking everything, both deleted afterwards."""
    from kombu import Connection, Exchange, Queue

    name = f"relay-test-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(name, type="topic", durable=False, auto_delete=False)
    with Connection(config["amqp"]["uri"]) as conn:
        queue = Queue(name, exchange, routing_key="#", durable=False)
        queue(conn.channel()).declare()
        yield exchange, queue, conn
        queue(conn.channel()).delete()
        exchange(conn.channel()).delete()


def test_a_batch_is_confirmed_whole_and_arrives_in_order(config, bound_queue):
    from services.chassis.outbox import ConfirmingPublisher

    exchange, queue, conn = bound_queue
    publisher = ConfirmingPublisher(config["amqp"]["uri"], exchange)
    try:
        messages = [("thing_happened", {"n": n}, {"h": str(n)}) for n in range(50)]
        assert publisher.publish_all(messages) == (list(range(50)), None)
        assert publisher.publish_all(messages[:3]) == ([0, 1, 2], None)  # the channel goes on
    finally:
        publisher.close()
    bodies = []
    with conn.SimpleQueue(queue) as simple:
        for _ in range(53):
            message = simple.get(timeout=5)
            bodies.append(message.payload["n"])
            message.ack()
    assert bodies == list(range(50)) + [0, 1, 2]


def test_a_batch_the_broker_refuses_is_not_reported_confirmed(config, bound_queue):
    from services.chassis.outbox import ConfirmingPublisher

    exchange, _queue, conn = bound_queue
    publisher = ConfirmingPublisher(config["amqp"]["uri"], exchange)
    try:
        assert publisher.publish_all([("a", {"n": 0}, {})]) == ([0], None)
        # The exchange vanishes under the open channel: the broker closes it on
        # the next publish, and none of the batch counts as sent.
        exchange(conn.channel()).delete()
        confirmed, error = publisher.publish_all([("a", {"n": n}, {}) for n in range(5)])
        assert confirmed == [] and error is not None
        # The next batch goes out on a new connection, which declares the exchange again.
        assert publisher.publish_all([("a", {"n": 9}, {})]) == ([0], None)
    finally:
        publisher.close()
