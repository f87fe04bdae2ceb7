"""The services' metrics, read as Prometheus reads them: real containers on the
real brokers, then a GET of the process's /metrics, parsed by prometheus_client.

Every process has one registry and the tests share it, so each test compares a
scrape after its calls with one before (``delta``), on series of its own."""

import copy
import datetime
import uuid

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import Integer, String, create_engine, insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.catalog.service import CatalogService
from services.chassis import metrics
from services.chassis.config import database_url, nameko_config
from services.chassis.db import Database
from services.chassis.errors import NotFound, Unavailable
from services.chassis.events import event_tables
from services.chassis.messaging import EventDispatcher, event_envelope, event_handler, rpc
from services.chassis.migrations import drop_database, ensure_database
from services.chassis.outbox import OutboxRelay
from services.chassis.schemas import obj
from services.chassis.service import VERSION, AgoraService
from services.chassis.testing import call_entrypoint as call
from services.orders.service import OrdersService
from tests.support.metrics import scrape
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
OWN_VHOST = True  # the failing handler's retries stay in this module

DB = "chassis_metrics"


class Base(DeclarativeBase):
    pass


OutboxEvent, InboxEvent = event_tables(Base)


class Row(Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))


EVENTS = {
    "noted": {"version": 1, "summary": "A key was noted", "payload": obj({"key": {}}, ("key",))}
}


class MeteredService(AgoraService):
    name = "metered"
    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)

    @rpc
    def ok(self):
        return "ok"

    @rpc
    def missing(self):
        raise NotFound("no such thing")

    @rpc
    def broken(self):
        raise ValueError("a bug")

    @rpc
    def down(self):
        raise Unavailable("the database is away")

    @rpc
    def note(self, key):
        self.db.session.add(Row(key=key))
        self.dispatch("noted", {"key": key})


class MeteredHandler(AgoraService):
    name = "metered_handler"
    db = Database(Base)

    @event_handler("metered", "noted")
    def on_noted(self, event):
        if event["data"]["key"].startswith("fail"):
            raise RuntimeError("this handler refuses it")
        self.db.session.add(Row(key=f"handled:{event['data']['key']}"))


@pytest.fixture(scope="module")
def engine(config):
    ensure_database(config, DB)
    engine = create_engine(database_url(config, DB))
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
    drop_database(config, DB)


@pytest.fixture
def start(container_factory, config, rabbit_vhost, engine):
    def start(cls):
        settings = nameko_config(config, cls.name)
        settings["DB_URIS"] = {f"{cls.name}:Base": database_url(config, DB)}
        container = container_factory(cls, settings)
        container.start()
        return container

    return start


@pytest.fixture
def rpc_proxy(config, rabbit_vhost):
    with ClusterRpcProxy(nameko_config(config, "tests"), timeout=10) as proxy:
        yield proxy


def endpoint():
    url = metrics.exposed_url()
    assert url is not None, "a started service serves /metrics"
    return url


def delta(before, after, name, **labels):
    return after.value(name, **labels) - before.value(name, **labels)


def test_a_service_serves_its_build_info_and_the_process_collectors(start):
    start(MeteredService)
    scraped = scrape(endpoint())
    assert scraped.value("agora_build_info", service="metered", version=VERSION) == 1
    assert "process_cpu_seconds" in scraped.families
    assert "python_info" in scraped.families


def test_rpc_calls_count_ok_rejected_and_error(start, rpc_proxy):
    start(MeteredService)
    before = scrape(endpoint())
    rpc_proxy.metered.ok()
    for method, expected in (("missing", NotFound), ("down", Unavailable)):
        with pytest.raises(expected):
            getattr(rpc_proxy.metered, method)()
    with pytest.raises(Exception, match="ValueError"):
        rpc_proxy.metered.broken()
    after = scrape(endpoint())

    calls = "agora_entrypoint_calls_total"
    labels = {"service": "metered", "kind": "rpc"}
    assert delta(before, after, calls, entrypoint="ok", outcome="ok", **labels) == 1
    # A named business error is the caller's answer: rejected, not an error.
    assert delta(before, after, calls, entrypoint="missing", outcome="rejected", **labels) == 1
    assert delta(before, after, calls, entrypoint="missing", outcome="error", **labels) == 0
    # Unavailable is named too, but means the service could not do its job.
    assert delta(before, after, calls, entrypoint="down", outcome="error", **labels) == 1
    assert delta(before, after, calls, entrypoint="broken", outcome="error", **labels) == 1
    duration = "agora_entrypoint_duration_seconds_count"
    for entrypoint in ("ok", "missing", "down", "broken"):
        assert delta(before, after, duration, entrypoint=entrypoint, **labels) == 1


def test_the_relay_counts_what_it_publishes_and_a_handler_its_events(start, rpc_proxy):
    start(MeteredService)
    start(MeteredHandler)
    before = scrape(endpoint())
    rpc_proxy.metered.note(f"k{uuid.uuid4().hex[:8]}")

    def handled():
        now = scrape(endpoint())
        labels = {"service": "metered_handler", "entrypoint": "on_noted", "kind": "event"}
        done = delta(before, now, "agora_entrypoint_calls_total", outcome="ok", **labels)
        return now if done == 1 else None

    after = wait_until(handled, what="the event handled and counted")
    assert delta(before, after, "agora_outbox_published_total", service="metered") == 1
    assert (
        delta(before, after, "agora_outbox_publish_duration_seconds_count", service="metered") >= 1
    )
    assert delta(before, after, "agora_entrypoint_calls_total", service="metered",
                 entrypoint="note", kind="rpc", outcome="ok") == 1  # fmt: skip
    # Published: nothing is left behind, and the scrape says so.
    wait_until(
        lambda: scrape(endpoint()).value("agora_outbox_backlog", service="metered") == 0,
        what="an empty backlog",
    )
    scraped = scrape(endpoint())
    assert scraped.has("agora_outbox_oldest_age_seconds", service="metered")
    pool = dict(
        (labels["state"], value)
        for labels, value in scraped.series("agora_db_pool_connections")
        if labels["service"] == "metered"
    )
    assert set(pool) == {"in_use", "idle"}
    assert pool["idle"] >= 1  # the calls above returned their connections


def test_the_backlog_and_the_age_of_the_oldest_unsent_row_are_read_at_scrape(config, engine):
    relay = OutboxRelay(engine, publisher=None, settings=config["events"])
    service = f"idle_{uuid.uuid4().hex[:6]}"
    with engine.begin() as conn:
        conn.execute(OutboxEvent.__table__.delete())
        for _ in range(3):
            envelope = event_envelope("metered", "noted", {"key": "x"})
            conn.execute(
                insert(OutboxEvent.__table__).values(
                    event_id=uuid.UUID(envelope["event_id"]),
                    event_type="noted",
                    envelope=envelope,
                    headers={},
                    created_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2),
                )
            )
    metrics.OUTBOX.add(service, relay)
    try:
        scraped = scrape(endpoint_or_serve(config))
    finally:
        metrics.OUTBOX.remove(service, relay)
        with engine.begin() as conn:
            conn.execute(OutboxEvent.__table__.delete())
    assert scraped.value("agora_outbox_backlog", service=service) == 3
    assert scraped.value("agora_outbox_oldest_age_seconds", service=service) > 3600
    assert not scrape(endpoint()).has("agora_outbox_backlog", service=service)


def endpoint_or_serve(config):
    """This process's endpoint, started here if no service started it yet."""
    return metrics.serve(config["metrics"])


def test_a_duplicate_event_is_counted_and_a_failing_one_retried_then_dead_lettered(start, config):
    start(MeteredHandler)
    dispatch = event_dispatcher(nameko_config(config, "tests"))
    before = scrape(endpoint())
    envelope = event_envelope("metered", "noted", {"key": "twice"})
    dispatch("metered", "noted", envelope)
    dispatch("metered", "noted", envelope)
    dispatch("metered", "noted", event_envelope("metered", "noted", {"key": "fail"}))

    event = {"service": "metered_handler", "event": "metered.noted"}
    queue = "evt-metered-noted--metered_handler.on_noted"
    attempts = config["events"]["max_attempts"]

    def settled():
        now = scrape(endpoint())
        dead = delta(before, now, "agora_dead_letters_total", service="metered_handler",
                     queue=queue)  # fmt: skip
        duplicates = delta(before, now, "agora_inbox_duplicates_total", **event)
        return now if dead == 1 and duplicates == 1 else None

    after = wait_until(settled, timeout=30, what="the duplicate skipped and the dead letter")
    assert delta(before, after, "agora_event_retries_total", **event) == attempts - 1
    labels = {"service": "metered_handler", "entrypoint": "on_noted", "kind": "event"}
    # A failing handler is an error whatever it raised: nobody is answered.
    assert delta(before, after, "agora_entrypoint_calls_total", outcome="error", **labels) == (
        attempts
    )


def test_the_catalog_cache_counts_a_miss_then_a_hit(start_service):
    catalog = start_service(CatalogService)
    product = call(
        catalog,
        "create_product",
        {
            "sku": f"SKU-M{uuid.uuid4().hex[:8]}".upper(),
            "name": "Metered mug",
            "price": {"amount": 500, "currency": "EUR"},
        },
    )
    before = scrape(endpoint())
    call(catalog, "get_product", product["id"])
    middle = scrape(endpoint())
    call(catalog, "get_product", product["id"])
    after = scrape(endpoint())
    requests = "agora_cache_requests_total"
    labels = {"service": "catalog", "cache": "products"}
    assert delta(before, middle, requests, result="miss", **labels) == 1
    assert delta(before, middle, requests, result="hit", **labels) == 0
    assert delta(middle, after, requests, result="hit", **labels) == 1
    assert delta(middle, after, requests, result="miss", **labels) == 0


def test_a_stopped_service_leaves_the_scrape_time_gauges(start):
    container = start(MeteredService)
    assert scrape(endpoint()).has("agora_db_pool_connections", service="metered", state="idle")
    container.stop()
    eventlet.sleep(0)
    scraped = scrape(endpoint())
    assert not scraped.has("agora_db_pool_connections", service="metered", state="idle")
    assert not scraped.has("agora_outbox_backlog", service="metered")


def test_an_order_expired_by_its_deadline_counts_its_statuses_and_its_saga(
    container_factory, service_config, start_service
):
    catalog = start_service(CatalogService)
    settings = copy.deepcopy(service_config("orders"))
    settings["AGORA"]["services"]["orders"]["saga_timeout"] = 1
    orders = container_factory(OrdersService, settings)
    orders.start()
    product = call(
        catalog,
        "create_product",
        {
            "sku": f"SKU-S{uuid.uuid4().hex[:8]}".upper(),
            "name": "Saga mug",
            "price": {"amount": 700, "currency": "EUR"},
        },
    )
    before = scrape(endpoint())
    payload = {"items": [{"product_id": product["id"], "quantity": 1}], "payment": {"token": "t"}}
    call(orders, "create_order", str(uuid.uuid4()), payload, uuid.uuid4().hex)
    # No inventory runs here: the order waits until its deadline, and the sweep expires it.
    labels = {"service": "orders"}

    def expired():
        now = scrape(endpoint())
        return now if delta(before, now, "agora_saga_timeouts_total", **labels) >= 1 else None

    after = wait_until(expired, timeout=30, what="the order expired by the sweep")
    changes = "agora_orders_status_changes_total"
    assert delta(before, after, changes, status="pending", **labels) == 1
    # The sweep may close other modules' leftover orders in the same database too.
    assert delta(before, after, changes, status="expired", **labels) >= 1
    sagas = "agora_saga_duration_seconds_count"
    assert delta(before, after, sagas, outcome="expired", **labels) >= 1
    assert delta(before, after, sagas, outcome="confirmed", **labels) == 0
