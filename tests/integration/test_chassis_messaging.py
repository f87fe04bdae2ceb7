"""The chassis on real RabbitMQ and PostgreSQL: unit of work, events, trace context."""

import uuid

import amqp
import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.chassis.config import database_url, nameko_config
from services.chassis.db import Database
from services.chassis.errors import Conflict, Unavailable
from services.chassis.events import event_tables
from services.chassis.messaging import (
    EventDispatcher,
    event_handler,
    keep_changes,
    rpc,
)
from services.chassis.migrations import drop_database, ensure_database
from services.chassis.schemas import obj
from services.chassis.service import AgoraService
from services.chassis.service_client import ServiceClient
from services.chassis.tracing import B3_KEY

pytestmark = pytest.mark.integration


class Base(DeclarativeBase):
    pass


OutboxEvent, InboxEvent = event_tables(Base)

NOTE_EVENTS = {
    "note_added": {
        "version": 1,
        "summary": "A note was added",
        "payload": obj({"id": {"type": "string"}, "text": {"type": "string"}}, ("id", "text")),
    }
}


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


seen = {}


class NotesService(AgoraService):
    name = "chassis_notes"
    db = Database(Base)
    dispatch = EventDispatcher(NOTE_EVENTS)

    @rpc
    def add(self, text, fail=False):
        note_id = str(uuid.uuid4())
        self.db.session.add(Note(id=note_id, text=text))
        self.dispatch("note_added", {"id": note_id, "text": text})
        if fail:
            raise Conflict("refused after writing", {"text": text})
        return note_id

    @rpc
    def add_then_refuse(self, text):
        """A refusal whose writes must stand (as revoking a token family on reuse)."""
        note_id = str(uuid.uuid4())
        self.db.session.add(Note(id=note_id, text=text))
        self.dispatch("note_added", {"id": note_id, "text": text})
        raise keep_changes(Conflict("refused, but the note stays", {"id": note_id}))

    @rpc
    def add_silently(self, text):
        """A write with no event: nothing reaches the database before the commit."""
        self.db.session.add(Note(id=str(uuid.uuid4()), text=text))

    @rpc
    def count(self):
        return len(self.db.session.scalars(select(Note.id)).all())


class FrontService(AgoraService):
    name = "chassis_front"
    notes = ServiceClient("chassis_notes")

    @rpc
    def add_via_notes(self, text):
        return self.notes.add(text)


class ListenerService(AgoraService):
    name = "chassis_listener"

    @event_handler("chassis_notes", "note_added")
    def on_note_added(self, envelope):
        seen[envelope["data"]["id"]] = envelope


@pytest.fixture(scope="module")
def chassis_db(config):
    ensure_database(config, "chassis_notes")
    engine = create_engine(database_url(config, "chassis_notes"))
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
    drop_database(config, "chassis_notes")


@pytest.fixture
def running(container_factory, config, rabbit_vhost, chassis_db, zipkin):
    traced = {
        **config,
        "tracing": {**config["tracing"], "zipkin_url": zipkin.url, "flush_interval": 0.1},
    }
    containers = {}
    for cls in (NotesService, FrontService, ListenerService):
        settings = nameko_config(traced, cls.name)
        settings["DB_URIS"] = {f"{cls.name}:Base": database_url(config, "chassis_notes")}
        containers[cls.name] = container_factory(cls, settings)
        containers[cls.name].start()
    return containers


def stored(engine, note_id):
    with engine.connect() as conn:
        return conn.execute(select(Note.text).where(Note.id == note_id)).scalar()


def test_commit_happens_before_the_reply(running, chassis_db, config):
    with ClusterRpcProxy(nameko_config(config, "t")) as proxy:
        note_id = proxy.chassis_notes.add("kept")
    # The reply came back: the row must already be visible to anyone.
    assert stored(chassis_db, note_id) == "kept"


def test_an_error_rolls_back_and_publishes_nothing(running, chassis_db, config):
    text = f"dropped-{uuid.uuid4().hex[:6]}"
    with ClusterRpcProxy(nameko_config(config, "t")) as proxy:
        with pytest.raises(Conflict) as excinfo:
            proxy.chassis_notes.add(text, fail=True)
    assert excinfo.value.details == {"text": text}
    with chassis_db.connect() as conn:
        assert conn.execute(select(Note.id).where(Note.text == text)).first() is None
    assert not any(e["data"]["text"] == text for e in seen.values())


def test_keep_changes_commits_and_publishes_then_raises(running, chassis_db, config):
    listener = running["chassis_listener"]
    with entrypoint_waiter(listener, "on_note_added", timeout=10):
        with ClusterRpcProxy(nameko_config(config, "t")) as proxy:
            with pytest.raises(Conflict) as excinfo:
                proxy.chassis_notes.add_then_refuse("kept despite the error")
    note_id = excinfo.value.details["id"]
    assert stored(chassis_db, note_id) == "kept despite the error"
    assert seen[note_id]["data"]["text"] == "kept despite the error"


def test_events_reach_handlers_with_the_envelope(running, config):
    listener = running["chassis_listener"]
    with entrypoint_waiter(listener, "on_note_added", timeout=10):
        with ClusterRpcProxy(nameko_config(config, "t")) as proxy:
            note_id = proxy.chassis_notes.add("evented")
    envelope = seen[note_id]
    assert envelope["type"] == "chassis_notes.note_added"
    assert envelope["version"] == 1
    assert envelope["occurred_at"].endswith("Z")
    uuid.UUID(envelope["event_id"])
    assert envelope["data"] == {"id": note_id, "text": "evented"}


def test_trace_context_crosses_rpc_and_events_intact(running, config, zipkin):
    trace_id = uuid.uuid4().hex
    caller_span = uuid.uuid4().hex[:16]
    settings = nameko_config(config, "t")
    listener = running["chassis_listener"]
    with entrypoint_waiter(listener, "on_note_added", timeout=10):
        with ClusterRpcProxy(settings, context_data={B3_KEY: f"{trace_id}-{caller_span}-1"}) as p:
            p.chassis_front.add_via_notes("traced")

    spans = zipkin.trace(trace_id, count=4)
    named = {(s["localEndpoint"]["serviceName"], s["name"], s.get("kind")): s for s in spans}
    front = named[("chassis_front", "rpc chassis_front.add_via_notes", "SERVER")]
    client = named[("chassis_front", "rpc chassis_notes.add", "CLIENT")]
    notes = named[("chassis_notes", "rpc chassis_notes.add", "SERVER")]
    event = named[("chassis_listener", "event chassis_notes.note_added", "SERVER")]
    assert event["tags"]["nameko.entrypoint"] == "event_handler"
    assert front["parentId"] == caller_span
    assert client["parentId"] == front["id"]
    assert notes["parentId"] == client["id"]
    assert event["parentId"] == notes["id"]


def test_the_redis_pool_is_closed_when_the_service_stops(running, redis_client, config):
    name = f"{config['redis']['key_prefix']}chassis_notes"

    def connections():
        return [c for c in redis_client.client_list() if c["name"] == name]

    container = running["chassis_notes"]
    provider = next(d for d in container.dependencies if d.attr_name == "cache")
    provider.client.ping()
    assert connections()
    container.stop()
    assert provider.client is None
    assert connections() == []


def test_replies_survive_the_broker_closing_their_channel(running, config):
    """Replies carry no publisher confirm, so the broker's only word on a broken
    reply channel is a close nobody waits for: the next reply must notice it
    and go out on a new channel, not vanish."""
    container = running["chassis_notes"]
    consumer = next(e for e in container.subextensions if hasattr(e, "replies"))
    with ClusterRpcProxy(nameko_config(config, "t"), timeout=10) as proxy:
        assert proxy.chassis_notes.health()["service"] == "chassis_notes"
        channel = consumer.replies.producer.channel
        # A publish to an exchange that does not exist: the broker closes the channel.
        channel.basic_publish(amqp.Message(b"x"), exchange=f"none-{uuid.uuid4()}")
        for _ in range(3):
            assert proxy.chassis_notes.health()["service"] == "chassis_notes"
    assert consumer.replies.producer.channel is not channel


class NotesWithoutDatabase(NotesService):
    name = "chassis_notes_nodb"


def test_a_database_outage_is_a_named_unavailable_error(container_factory, config, rabbit_vhost):
    settings = nameko_config(config, NotesWithoutDatabase.name)
    # Nothing listens on port 1: every query fails to connect.
    settings["DB_URIS"] = {
        f"{NotesWithoutDatabase.name}:Base": "postgresql+psycopg2://postgres@127.0.0.1:1/none"
    }
    # It keeps consuming (its health monitor would take it off its queue): the
    # error a caller gets from an instance that is still serving is the subject.
    settings["AGORA"]["health_monitor"]["dependencies"] = []
    container = container_factory(NotesWithoutDatabase, settings)
    container.start()
    with ClusterRpcProxy(nameko_config(config, "t")) as proxy:
        # Failing on a query: the outage is named after the dependency.
        with pytest.raises(Unavailable) as excinfo:
            proxy.chassis_notes_nodb.count()
        assert excinfo.value.details == {"dependency": "database"}
        assert "cannot reach its database" in excinfo.value.message
        # Writing an event is a query too (the outbox insert).
        with pytest.raises(Unavailable) as excinfo:
            proxy.chassis_notes_nodb.add("lost")
        assert excinfo.value.details == {"dependency": "database"}
        # Failing only at commit: the change is reported as not saved.
        with pytest.raises(Unavailable) as excinfo:
            proxy.chassis_notes_nodb.add_silently("lost")
        assert excinfo.value.message == "the change could not be saved, try again"
        assert excinfo.value.details is None
        assert proxy.chassis_notes_nodb.health()["checks"]["db"].startswith("error")
