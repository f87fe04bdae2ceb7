"""The inventory service in a real container: PostgreSQL, RabbitMQ and the order saga's events."""

import copy
import functools
import logging
import random
import shutil
import subprocess
import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import func, select

from agora.deadletters import dead_letters
from services.chassis.config import amqp_vhost
from services.chassis.errors import Conflict, NotFound, Unavailable, UnknownSku, ValidationError
from services.chassis.messaging import event_handler, rpc
from services.chassis.schemas import validate
from services.chassis.testing import call_entrypoint as call
from services.inventory.models import (
    CatalogSku,
    InboxEvent,
    OutboxEvent,
    Reservation,
    ReservationLine,
    StockLevel,
)
from services.inventory.schemas import EVENTS, RESERVATION, STOCK, SYNC_RESULT
from services.inventory.service import InventoryService
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
# Its services' durable event queues stay out of other modules' way.
OWN_VHOST = True

EMITTED = tuple(EVENTS)
received = []


class Listener:
    """Every inventory event as published (no ``db``: no inbox)."""

    name = "inventory_test_listener"


def _recorder(event_type):
    @event_handler("inventory", event_type)
    def handle(self, event):
        received.append(event)

    handle.__name__ = f"on_{event_type}"
    return handle


for _event_type in EMITTED:
    setattr(Listener, f"on_{_event_type}", _recorder(_event_type))


# --- fixtures and helpers ------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(service_engine):
    return service_engine("inventory")


# The SKUs the catalog has: new_sku() makes products' SKUs.
CATALOG_SKUS = set()


class CatalogStandIn:
    """Answers inventory's ``catalog.known_skus`` from CATALOG_SKUS, as the catalog
    answers from its products (a real service on the broker)."""

    name = "catalog"

    @rpc
    def known_skus(self, skus):
        return sorted(set(skus) & CATALOG_SKUS)


@pytest.fixture
def catalog_stand_in(start_service):
    return start_service(CatalogStandIn)


@pytest.fixture
def inventory(engine, start_service, catalog_stand_in):
    return start_service(InventoryService)


@pytest.fixture
def listener(start_service):
    return start_service(Listener)


@pytest.fixture
def publish(publish_event):
    """``publish("order_created", data)``: an orders event, as the orders service sends it."""
    return functools.partial(publish_event, "orders")


@pytest.fixture
def rpc_proxy(service_config):
    settings = service_config("tests")
    with ClusterRpcProxy({"AMQP_URI": settings["AMQP_URI"], "SERIALIZER": "json"}) as proxy:
        yield proxy


def new_sku(product=True):
    """A fresh SKU; one a catalog product has unless ``product`` is false."""
    sku = f"INV-{uuid.uuid4().hex[:12].upper()}"
    if product:
        CATALOG_SKUS.add(sku)
    return sku


def projected(engine, sku):
    """True if inventory's projection of the catalog's SKUs holds ``sku``."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(CatalogSku.sku == sku)).scalar() == 1


def new_id():
    return str(uuid.uuid4())


def events(event_type, **match):
    return [
        e["data"]
        for e in received
        if e["type"] == f"inventory.{event_type}"
        and all(e["data"].get(k) == v for k, v in match.items())
    ]


def wait_event(event_type, **match):
    """The one ``inventory.<event_type>`` whose data has these values (waits for it)."""
    found = wait_until(lambda: events(event_type, **match), what=f"{event_type} {match}")
    assert len(found) == 1, found
    return found[0]


def order_created(order_id, *lines):
    """An orders.order_created payload; ``lines`` are (sku, quantity)."""
    items = [
        {
            "product_id": new_id(),
            "sku": sku,
            "name": f"Product {sku}",
            "quantity": quantity,
            "unit_price": {"amount": 500, "currency": "EUR"},
            "line_total": {"amount": 500 * quantity, "currency": "EUR"},
        }
        for sku, quantity in lines
    ]
    total = sum(item["line_total"]["amount"] for item in items)
    return {
        "order_id": order_id,
        "user_id": new_id(),
        "items": items,
        "total": {"amount": total, "currency": "EUR"},
        "deadline_at": "2030-01-01T00:00:00.000000Z",
    }


def reserve(publish, *lines):
    """Publish order_created for a new order and wait for inventory's answer."""
    order_id = new_id()
    publish("order_created", order_created(order_id, *lines))
    wait_until(
        lambda: (
            events("stock_reserved", order_id=order_id)
            or events("reservation_rejected", order_id=order_id)
        ),
        what=f"the reservation of {order_id}",
    )
    return order_id


def levels(engine, sku):
    """{warehouse: (on_hand, reserved)} straight from the table."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(StockLevel.warehouse, StockLevel.on_hand, StockLevel.reserved).where(
                StockLevel.sku == sku
            )
        ).all()
    return {warehouse: (on_hand, reserved) for warehouse, on_hand, reserved in rows}


def held_by_active_reservations(engine, sku):
    """{warehouse: quantity} the active reservations' lines hold of ``sku``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ReservationLine.warehouse, func.sum(ReservationLine.quantity))
            .join(Reservation, Reservation.id == ReservationLine.reservation_id)
            .where(ReservationLine.sku == sku, Reservation.status == "active")
            .group_by(ReservationLine.warehouse)
        ).all()
    return {warehouse: quantity for warehouse, quantity in rows}


def oversold_rows(engine):
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(
                (StockLevel.reserved > StockLevel.on_hand) | (StockLevel.reserved < 0)
            )
        ).scalar()


def handled(engine, envelope):
    """True once ``envelope`` was handled and committed (its inbox row exists)."""
    event_type = envelope["type"].split(".", 1)[1]
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(
                InboxEvent.event_id == uuid.UUID(envelope["event_id"]),
                InboxEvent.consumer == f"inventory.on_{event_type}",
            )
        ).scalar()


def wait_handled(engine, envelope):
    wait_until(lambda: handled(engine, envelope), what=f"{envelope['type']} handled")


def queue_drained(config, event_type):
    """True if inventory's queue for ``orders.<event_type>`` holds no message, unacked or not
    (a handler acks only after its transaction has ended)."""
    queue = f"evt-orders-{event_type}--inventory.on_{event_type}"
    command = [shutil.which("rabbitmqctl"), "-q", "list_queues", "-p", amqp_vhost(config)]
    command += ["--no-table-headers", "name", "messages_ready", "messages_unacknowledged"]
    listing = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        if fields and fields[0] == queue:
            return fields[1:] == ["0", "0"]
    raise AssertionError(f"no queue {queue}")


def payment_failed(order_id):
    return {"order_id": order_id, "user_id": new_id(), "payment_id": None, "reason": "declined"}


def cancelled(order_id, previous_status="reserved"):
    return {
        "order_id": order_id,
        "user_id": new_id(),
        "reason": "customer",
        "previous_status": previous_status,
    }


# --- get_stock / set_stock ------------------------------------------------------------


def test_set_stock_creates_a_row_and_returns_the_stock(inventory):
    sku = new_sku()
    stock = call(inventory, "set_stock", sku, "main", 7)
    validate(STOCK, stock)
    assert stock == {
        "sku": sku,
        "warehouses": [{"warehouse": "main", "on_hand": 7, "reserved": 0, "available": 7}],
        "total": {"on_hand": 7, "reserved": 0, "available": 7},
    }
    call(inventory, "set_stock", sku, "east", 3)
    stock = call(inventory, "get_stock", sku)
    assert [w["warehouse"] for w in stock["warehouses"]] == ["east", "main"]
    assert stock["total"] == {"on_hand": 10, "reserved": 0, "available": 10}


def test_set_stock_to_zero_keeps_the_row(inventory):
    sku = new_sku()
    call(inventory, "set_stock", sku, "main", 4)
    stock = call(inventory, "set_stock", sku, "main", 0)
    assert stock["warehouses"] == [
        {"warehouse": "main", "on_hand": 0, "reserved": 0, "available": 0}
    ]


def test_unknown_sku_is_not_found(inventory):
    sku = new_sku()
    with pytest.raises(NotFound) as info:
        call(inventory, "get_stock", sku)
    assert info.value.details == {"sku": sku}


@pytest.mark.parametrize(
    "arguments, field",
    [
        (("lower-sku", "main", 1), "sku"),
        ((None, "main", 1), "sku"),
        (("SKU-1", "Main", 1), "warehouse"),
        (("SKU-1", "-east", 1), "warehouse"),
        (("SKU-1", "main", -1), "on_hand"),
        (("SKU-1", "main", 1.5), "on_hand"),
        (("SKU-1", "main", "3"), "on_hand"),
        (("SKU-1", "main", 10**9 + 1), "on_hand"),
    ],
)
def test_set_stock_bad_arguments_name_the_field(inventory, arguments, field):
    with pytest.raises(ValidationError) as info:
        call(inventory, "set_stock", *arguments)
    assert list(info.value.details) == [field]


def test_get_stock_malformed_sku_is_a_validation_error(inventory):
    with pytest.raises(ValidationError) as info:
        call(inventory, "get_stock", "not a sku")
    assert list(info.value.details) == ["sku"]


def test_errors_cross_rpc_intact(inventory, rpc_proxy):
    with pytest.raises(NotFound):
        rpc_proxy.inventory.get_stock(new_sku())
    with pytest.raises(ValidationError) as info:
        rpc_proxy.inventory.set_stock(new_sku(), "main", -3)
    assert info.value.details == {"on_hand": "must be >= 0"}
    sku = new_sku()
    assert rpc_proxy.inventory.set_stock(sku, "main", 2)["total"]["on_hand"] == 2


# --- only the catalog's SKUs --------------------------------------------------------------


def test_stock_is_kept_only_for_a_product_sku(inventory, engine):
    sku, known = new_sku(product=False), new_sku()
    with pytest.raises(UnknownSku) as info:
        call(inventory, "set_stock", sku, "main", 5)
    assert (info.value.status, info.value.code) == (404, "unknown_sku")
    assert info.value.details == {"sku": sku}
    with pytest.raises(UnknownSku):
        call(inventory, "adjust_stock", sku, "main", 5, "delivery")
    body = [{"sku": known, "on_hand": 1}, {"sku": sku, "on_hand": 2}]
    with pytest.raises(UnknownSku) as info:
        call(inventory, "sync_warehouse", f"s-{uuid.uuid4().hex}", "main", body)
    assert info.value.details == {"levels.1.sku": "no product has this sku"}
    # Nothing was created, not even for the known SKU of the refused sync.
    assert levels(engine, sku) == {} and levels(engine, known) == {}
    assert not projected(engine, sku)


def test_a_sku_the_catalog_confirms_is_remembered(inventory, engine):
    """A product older than the projection, or whose product_created is still on
    its way: the catalog is asked once, and the answer kept."""
    sku = new_sku()
    assert not projected(engine, sku)
    assert call(inventory, "set_stock", sku, "main", 3)["total"]["on_hand"] == 3
    assert projected(engine, sku)
    CATALOG_SKUS.discard(sku)  # the catalog is not asked again
    assert call(inventory, "adjust_stock", sku, "main", 2, "delivery")["total"]["on_hand"] == 5


def test_product_created_teaches_inventory_the_sku(inventory, engine, publish_event):
    sku = new_sku(product=False)  # the stand-in does not know it: only the event does
    product = {
        "id": new_id(),
        "sku": sku,
        "name": "Mug",
        "description": "",
        "price": {"amount": 500, "currency": "EUR"},
        "active": True,
        "created_at": "2026-12-01T00:00:00.000000Z",
        "updated_at": "2026-12-01T00:00:00.000000Z",
    }
    envelope = publish_event("catalog", "product_created", {"product": product})
    wait_until(lambda: projected(engine, sku), what=f"{sku} learned from {envelope['event_id']}")
    assert call(inventory, "set_stock", sku, "main", 4)["total"]["on_hand"] == 4


def test_without_the_catalog_a_new_sku_is_unavailable_not_unknown(engine, start_service):
    inventory = start_service(InventoryService)  # no catalog running
    sku = new_sku()
    with pytest.raises(Unavailable) as info:
        call(inventory, "set_stock", sku, "main", 1)
    # Not answering (its queue waits) or not there at all: either way, the catalog.
    assert "catalog" in info.value.details.values()
    assert levels(engine, sku) == {}


# --- adjust_stock ---------------------------------------------------------------------


def test_adjust_stock_adds_and_removes(inventory):
    sku = new_sku()
    stock = call(inventory, "adjust_stock", sku, "west", 5, "delivery")  # creates the row
    assert stock["warehouses"] == [
        {"warehouse": "west", "on_hand": 5, "reserved": 0, "available": 5}
    ]
    stock = call(inventory, "adjust_stock", sku, "west", -2, "damaged")
    assert stock["total"] == {"on_hand": 3, "reserved": 0, "available": 3}


def test_adjust_stock_below_zero_is_a_conflict(inventory, engine):
    sku = new_sku()
    call(inventory, "set_stock", sku, "main", 2)
    with pytest.raises(Conflict) as info:
        call(inventory, "adjust_stock", sku, "main", -3, "lost")
    assert info.value.details == {"delta": "must be >= -2"}
    with pytest.raises(Conflict):  # a missing row holds nothing to remove, and is not created
        call(inventory, "adjust_stock", sku, "east", -1, "lost")
    assert levels(engine, sku) == {"main": (2, 0)}


@pytest.mark.parametrize(
    "delta, reason, field",
    [(0, "nothing", "delta"), (1, "", "reason"), (1, None, "reason"), (True, "x", "delta")],
)
def test_adjust_stock_bad_arguments(inventory, delta, reason, field):
    with pytest.raises(ValidationError) as info:
        call(inventory, "adjust_stock", new_sku(), "main", delta, reason)
    assert list(info.value.details) == [field]


def test_concurrent_adjustments_all_count(inventory, rpc_proxy, engine):
    """Twenty +1s racing on a row that does not exist yet: one creates it, none is lost."""
    sku = new_sku()
    replies = [
        rpc_proxy.inventory.adjust_stock.call_async(sku, "main", 1, "count") for _ in range(20)
    ]
    for reply in replies:
        reply.result()
    assert levels(engine, sku) == {"main": (20, 0)}


# --- sync_warehouse -------------------------------------------------------------------


def test_sync_sets_the_listed_skus_and_a_replay_changes_nothing(inventory, engine):
    a, b, c = new_sku(), new_sku(), new_sku()
    call(inventory, "set_stock", a, "main", 5)
    call(inventory, "set_stock", c, "main", 9)
    sync_id = f"count-{uuid.uuid4().hex}"
    body = [{"sku": a, "on_hand": 5}, {"sku": b, "on_hand": 4}]
    result = call(inventory, "sync_warehouse", sync_id, "main", body)
    validate(SYNC_RESULT, result)
    # a is unchanged, b is new; c is not listed and keeps its stock.
    assert result == {"sync_id": sync_id, "warehouse": "main", "applied": 1, "replayed": False}
    assert levels(engine, b) == {"main": (4, 0)}
    assert levels(engine, c) == {"main": (9, 0)}

    call(inventory, "set_stock", b, "main", 1)  # changed since the sync
    replay = call(inventory, "sync_warehouse", sync_id, "main", list(reversed(body)))
    assert replay == {**result, "replayed": True}
    assert levels(engine, b) == {"main": (1, 0)}  # the replay applied nothing


def test_sync_id_with_another_body_is_a_conflict(inventory):
    sku = new_sku()
    sync_id = f"count-{uuid.uuid4().hex}"
    call(inventory, "sync_warehouse", sync_id, "main", [{"sku": sku, "on_hand": 1}])
    with pytest.raises(Conflict) as info:
        call(inventory, "sync_warehouse", sync_id, "main", [{"sku": sku, "on_hand": 2}])
    assert info.value.details == {"sync_id": "already used for a different sync"}
    with pytest.raises(Conflict):
        call(inventory, "sync_warehouse", sync_id, "east", [{"sku": sku, "on_hand": 1}])


def test_sync_bad_bodies(inventory):
    sku = new_sku()
    with pytest.raises(ValidationError) as info:
        call(
            inventory,
            "sync_warehouse",
            "s-1",
            "main",
            [{"sku": sku, "on_hand": 1}, {"sku": sku, "on_hand": 2}],
        )
    assert info.value.details == {"levels.1.sku": "appears more than once"}
    with pytest.raises(ValidationError) as info:
        call(inventory, "sync_warehouse", "", "MAIN", [{"sku": "x", "on_hand": -1}])
    assert set(info.value.details) == {"sync_id", "warehouse", "levels.0.sku", "levels.0.on_hand"}


def test_concurrent_syncs_with_one_id_apply_once(inventory, rpc_proxy, engine):
    skus = sorted(new_sku() for _ in range(5))
    sync_id = f"count-{uuid.uuid4().hex}"
    body = [{"sku": sku, "on_hand": 3} for sku in skus]
    replies = [
        rpc_proxy.inventory.sync_warehouse.call_async(sync_id, "main", body) for _ in range(6)
    ]
    results = [reply.result() for reply in replies]
    assert sorted(r["replayed"] for r in results) == [False] + [True] * 5
    assert {r["applied"] for r in results} == {5}
    assert all(levels(engine, sku) == {"main": (3, 0)} for sku in skus)


# --- get_reservation --------------------------------------------------------------------


def test_unknown_reservation_is_not_found(inventory):
    order_id = new_id()
    with pytest.raises(NotFound) as info:
        call(inventory, "get_reservation", order_id)
    assert info.value.details == {"order_id": order_id}


@pytest.mark.parametrize("order_id", ["nope", None, 5, str(uuid.uuid4()).upper()])
def test_malformed_order_id_is_a_validation_error(inventory, order_id):
    with pytest.raises(ValidationError) as info:
        call(inventory, "get_reservation", order_id)
    assert list(info.value.details) == ["order_id"]


# --- stock_changed ------------------------------------------------------------------------


def test_every_changed_row_emits_stock_changed(inventory, listener, engine):
    sku, other = new_sku(), new_sku()
    call(inventory, "set_stock", sku, "main", 5)
    assert wait_event("stock_changed", sku=sku, reason="set") == {
        "sku": sku,
        "warehouse": "main",
        "on_hand": 5,
        "reserved": 0,
        "available": 5,
        "reason": "set",
    }
    call(inventory, "set_stock", sku, "main", 5)  # no change: no event
    call(inventory, "adjust_stock", sku, "main", 2, "delivery")
    assert wait_event("stock_changed", sku=sku, reason="adjust")["on_hand"] == 7
    sync = [{"sku": sku, "on_hand": 7}, {"sku": other, "on_hand": 1}]
    call(inventory, "sync_warehouse", f"s-{uuid.uuid4().hex}", "main", sync)
    assert wait_event("stock_changed", sku=other, reason="sync")["on_hand"] == 1
    # The relay publishes in commit order, so anything else would have arrived by now.
    assert [e["reason"] for e in events("stock_changed", sku=sku)] == ["set", "adjust"]
    with engine.connect() as conn:
        stored = conn.execute(
            select(OutboxEvent.envelope).where(OutboxEvent.envelope["data"]["sku"].astext == other)
        ).scalar_one()
    assert stored["type"] == "inventory.stock_changed" and stored["version"] == 1


# --- the saga: reserve ------------------------------------------------------------------


def test_order_created_reserves_from_the_default_warehouse_first(
    inventory, listener, publish, engine
):
    sku, other = new_sku(), new_sku()
    call(inventory, "set_stock", sku, "aaa", 10)
    call(inventory, "set_stock", sku, "main", 3)
    call(inventory, "set_stock", sku, "zzz", 10)
    call(inventory, "set_stock", other, "zzz", 1)
    order_id = new_id()
    publish("order_created", order_created(order_id, (sku, 4), (other, 1), (sku, 1)))
    reserved = wait_event("stock_reserved", order_id=order_id)
    validate(EVENTS["stock_reserved"]["payload"], reserved)
    # 5 of sku: all 3 of main (the default), then 2 of "aaa" (by name); "zzz" gives nothing.
    expected = [
        {"sku": sku, "warehouse": "aaa", "quantity": 2},
        {"sku": sku, "warehouse": "main", "quantity": 3},
        {"sku": other, "warehouse": "zzz", "quantity": 1},
    ]
    assert reserved["lines"] == sorted(expected, key=lambda x: (x["sku"], x["warehouse"]))
    assert levels(engine, sku) == {"aaa": (10, 2), "main": (3, 3), "zzz": (10, 0)}
    assert levels(engine, other) == {"zzz": (1, 1)}
    stock = call(inventory, "get_stock", sku)
    assert stock["total"] == {"on_hand": 23, "reserved": 5, "available": 18}

    reservation = call(inventory, "get_reservation", order_id)
    validate(RESERVATION, reservation)
    assert reservation == {
        "reservation_id": reserved["reservation_id"],
        "order_id": order_id,
        "status": "active",
        "expires_at": reserved["expires_at"],
        "lines": reserved["lines"],
    }


def test_order_created_reserves_all_lines_or_none(inventory, listener, publish, engine):
    plenty, scarce, unknown = new_sku(), new_sku(), new_sku()
    call(inventory, "set_stock", plenty, "main", 10)
    call(inventory, "set_stock", scarce, "main", 1)
    call(inventory, "set_stock", scarce, "east", 1)
    order_id = new_id()
    publish("order_created", order_created(order_id, (plenty, 2), (scarce, 3), (unknown, 1)))
    rejected = wait_event("reservation_rejected", order_id=order_id)
    validate(EVENTS["reservation_rejected"]["payload"], rejected)
    assert sorted(rejected["shortages"], key=lambda s: s["sku"]) == sorted(
        [
            {"sku": scarce, "requested": 3, "available": 2},
            {"sku": unknown, "requested": 1, "available": 0},
        ],
        key=lambda s: s["sku"],
    )
    assert levels(engine, plenty) == {"main": (10, 0)}
    assert levels(engine, scarce) == {"main": (1, 0), "east": (1, 0)}
    reservation = call(inventory, "get_reservation", order_id)
    assert (reservation["status"], reservation["lines"], reservation["expires_at"]) == (
        "released",
        [],
        None,
    )
    # The order was answered: the same order again (a new event) reserves nothing.
    again = publish("order_created", order_created(order_id, (plenty, 1)))
    wait_handled(engine, again)
    assert levels(engine, plenty) == {"main": (10, 0)}
    assert not events("stock_reserved", order_id=order_id)


def test_an_order_is_reserved_once_whatever_is_redelivered(
    inventory, listener, publish, engine, config
):
    sku = new_sku()
    call(inventory, "set_stock", sku, "main", 10)
    order_id = new_id()
    envelope = publish("order_created", order_created(order_id, (sku, 2)))
    wait_event("stock_reserved", order_id=order_id)
    publish("order_created", None, envelope=envelope)  # the same event again: the inbox
    duplicate = publish("order_created", order_created(order_id, (sku, 2)))  # a new event
    wait_handled(engine, duplicate)
    wait_until(lambda: queue_drained(config, "order_created"), what="order_created drained")
    assert levels(engine, sku) == {"main": (10, 2)}
    assert len(events("stock_reserved", order_id=order_id)) == 1
    with engine.connect() as conn:
        reservations = conn.execute(
            select(func.count()).where(Reservation.order_id == uuid.UUID(order_id))
        ).scalar()
    assert reservations == 1


def test_malformed_order_events_are_dead_lettered(inventory, publish, engine, config, caplog):
    caplog.set_level(logging.WARNING)
    envelope = publish("order_created", {"order_id": "not-a-uuid", "items": []})
    attempts = config["events"]["max_attempts"]

    def dead():
        letters = dead_letters(config, "inventory")
        return [d for d in letters if d["event_id"] == envelope["event_id"]]

    letter = wait_until(dead, what="the dead letter")[0]
    assert letter["attempts"] == attempts
    assert "malformed orders.order_created" in letter["error"]
    assert not handled(engine, envelope)
    assert len(handler_failures(caplog)) == attempts


# --- the saga: commit --------------------------------------------------------------------


def test_order_paid_commits_the_reservation(inventory, listener, publish, engine):
    sku = new_sku()
    call(inventory, "set_stock", sku, "main", 5)
    order_id = reserve(publish, (sku, 2))
    reservation_id = wait_event("stock_reserved", order_id=order_id)["reservation_id"]
    assert levels(engine, sku) == {"main": (5, 2)}
    paid = {"order_id": order_id, "user_id": new_id(), "payment_id": new_id()}
    publish("order_paid", paid)
    assert wait_event("reservation_committed", order_id=order_id) == {
        "order_id": order_id,
        "reservation_id": reservation_id,
    }
    assert levels(engine, sku) == {"main": (3, 0)}
    reservation = call(inventory, "get_reservation", order_id)
    assert reservation["status"] == "committed"
    assert reservation["lines"] == [{"sku": sku, "warehouse": "main", "quantity": 2}]
    # Paid again (another event): nothing more leaves the stock, no second answer.
    wait_handled(engine, publish("order_paid", paid))
    assert levels(engine, sku) == {"main": (3, 0)}
    assert len(events("reservation_committed", order_id=order_id)) == 1
    assert not events("reservation_commit_failed", order_id=order_id)


def test_order_paid_without_a_reservation_fails_to_commit(inventory, listener, publish):
    order_id = new_id()
    publish("order_paid", {"order_id": order_id, "user_id": new_id(), "payment_id": new_id()})
    assert wait_event("reservation_commit_failed", order_id=order_id) == {
        "order_id": order_id,
        "reason": "no reservation for this order",
    }


def test_stock_below_reserved_is_refused(inventory, listener, publish, engine):
    sku = new_sku()
    call(inventory, "set_stock", sku, "main", 5)
    reserve(publish, (sku, 3))
    with pytest.raises(Conflict) as info:
        call(inventory, "set_stock", sku, "main", 2)
    assert info.value.details == {"on_hand": f"must be >= 3 (reserved) for {sku} in main"}
    with pytest.raises(Conflict) as info:
        call(inventory, "adjust_stock", sku, "main", -3, "lost")
    assert info.value.details == {"delta": "must be >= -2 (3 reserved)"}
    sync_id = f"s-{uuid.uuid4().hex}"
    fresh = new_sku()
    body = [{"sku": fresh, "on_hand": 4}, {"sku": sku, "on_hand": 1}]
    with pytest.raises(Conflict) as info:
        call(inventory, "sync_warehouse", sync_id, "main", body)
    assert info.value.details == {"levels.1.on_hand": "must be >= 3 (reserved)"}
    # All or nothing, and the sync id is not used up by a refused sync.
    assert levels(engine, sku) == {"main": (5, 3)} and levels(engine, fresh) == {}
    body[1]["on_hand"] = 3
    assert call(inventory, "sync_warehouse", sync_id, "main", body)["applied"] == 2
    assert call(inventory, "get_stock", sku)["total"]["available"] == 0


# --- the saga: release ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type, data",
    [
        ("order_cancelled", cancelled),
        ("order_payment_failed", payment_failed),
        (
            "order_expired",
            lambda order_id: {
                "order_id": order_id,
                "user_id": new_id(),
                "previous_status": "reserved",
            },
        ),
    ],
)
def test_releasing_an_active_reservation_gives_the_stock_back(
    inventory, listener, publish, engine, event_type, data
):
    sku = new_sku()
    call(inventory, "set_stock", sku, "main", 5)
    order_id = reserve(publish, (sku, 2))
    reservation_id = wait_event("stock_reserved", order_id=order_id)["reservation_id"]
    publish(event_type, data(order_id))
    released = wait_event("reservation_released", order_id=order_id)
    validate(EVENTS["reservation_released"]["payload"], released)
    assert released == {
        "order_id": order_id,
        "reservation_id": reservation_id,
        "reason": event_type,
    }
    assert levels(engine, sku) == {"main": (5, 0)}
    reservation = call(inventory, "get_reservation", order_id)
    assert reservation["status"] == "released"
    assert reservation["lines"] == [{"sku": sku, "warehouse": "main", "quantity": 2}]
    # Released once: another release changes nothing and says nothing.
    wait_handled(engine, publish("order_cancelled", cancelled(order_id)))
    assert len(events("reservation_released", order_id=order_id)) == 1
    assert levels(engine, sku) == {"main": (5, 0)}


def test_cancelling_a_committed_order_restocks(inventory, listener, publish, engine):
    sku = new_sku()
    call(inventory, "set_stock", sku, "main", 2)
    call(inventory, "set_stock", sku, "east", 5)
    order_id = reserve(publish, (sku, 4))
    publish("order_paid", {"order_id": order_id, "user_id": new_id(), "payment_id": new_id()})
    wait_event("reservation_committed", order_id=order_id)
    assert levels(engine, sku) == {"main": (0, 0), "east": (3, 0)}
    publish("order_cancelled", cancelled(order_id, "confirmed"))
    assert wait_event("reservation_released", order_id=order_id)["reason"] == "order_cancelled"
    assert levels(engine, sku) == {"main": (2, 0), "east": (5, 0)}
    # Committing a released reservation fails.
    publish("order_paid", {"order_id": order_id, "user_id": new_id(), "payment_id": new_id()})
    assert wait_event("reservation_commit_failed", order_id=order_id)["reason"] == (
        "reservation is released"
    )


def test_a_cancel_before_the_order_is_reserved_leaves_a_tombstone(
    inventory, listener, publish, engine
):
    sku = new_sku()
    call(inventory, "set_stock", sku, "main", 5)
    order_id = new_id()
    publish("order_cancelled", cancelled(order_id, "pending"))
    assert wait_event("reservation_released", order_id=order_id) == {
        "order_id": order_id,
        "reservation_id": None,
        "reason": "order_cancelled",
    }
    tombstone = call(inventory, "get_reservation", order_id)
    validate(RESERVATION, tombstone)
    assert tombstone["status"] == "released"
    assert tombstone["lines"] == [] and tombstone["expires_at"] is None
    assert tombstone["reservation_id"] is not None  # the tombstone row's own id
    # The late order_created reserves nothing and answers nothing.
    wait_handled(engine, publish("order_created", order_created(order_id, (sku, 1))))
    assert levels(engine, sku) == {"main": (5, 0)}
    assert not events("stock_reserved", order_id=order_id)
    assert not events("reservation_rejected", order_id=order_id)
    # A second cancel is a no-op too.
    wait_handled(
        engine,
        publish(
            "order_expired",
            {"order_id": order_id, "user_id": new_id(), "previous_status": "cancelled"},
        ),
    )
    assert len(events("reservation_released", order_id=order_id)) == 1


# --- expiry ----------------------------------------------------------------------------------


# The expiry runs when a reservation is due, not only at its next poll (expiry_interval).
@pytest.mark.parametrize("expiry_interval", [0.2, 3600.0], ids=["polling", "when-due"])
def test_reservations_expire_after_the_ttl(
    container_factory, service_config, engine, listener, publish, catalog_stand_in, expiry_interval
):
    settings = copy.deepcopy(service_config("inventory"))
    settings["AGORA"]["services"]["inventory"].update(
        reservation_ttl=1, expiry_interval=expiry_interval
    )
    inventory = container_factory(InventoryService, settings)
    inventory.start()
    sku = new_sku()
    call(inventory, "set_stock", sku, "main", 5)
    order_id = reserve(publish, (sku, 2))
    reservation_id = wait_event("stock_reserved", order_id=order_id)["reservation_id"]
    assert wait_event("reservation_expired", order_id=order_id) == {
        "order_id": order_id,
        "reservation_id": reservation_id,
    }
    assert levels(engine, sku) == {"main": (5, 0)}
    assert call(inventory, "get_reservation", order_id)["status"] == "expired"
    # Too late to commit; a release still answers, with nothing left to give back.
    publish("order_paid", {"order_id": order_id, "user_id": new_id(), "payment_id": new_id()})
    assert wait_event("reservation_commit_failed", order_id=order_id)["reason"] == (
        "reservation is expired"
    )
    publish("order_payment_failed", payment_failed(order_id))
    released = wait_event("reservation_released", order_id=order_id)
    assert released["reservation_id"] == reservation_id
    assert levels(engine, sku) == {"main": (5, 0)}
    assert len(events("reservation_expired", order_id=order_id)) == 1


# --- concurrency -------------------------------------------------------------------------------


def handler_failures(caplog):
    return [r.getMessage() for r in caplog.records if " failed on orders." in r.getMessage()]


def test_concurrent_orders_never_oversell(inventory, listener, publish, engine, caplog):
    """40 orders of 1 racing for 10 in stock: exactly 10 are reserved."""
    caplog.set_level(logging.WARNING)
    sku = new_sku()
    call(inventory, "set_stock", sku, "main", 10)
    order_ids = [new_id() for _ in range(40)]
    for order_id in order_ids:
        publish("order_created", order_created(order_id, (sku, 1)))

    def answered():
        assert oversold_rows(engine) == 0  # at every moment, not only at the end
        return sum(
            len(events("stock_reserved", order_id=o) + events("reservation_rejected", order_id=o))
            for o in order_ids
        ) == len(order_ids)

    wait_until(answered, timeout=60, what="every order answered")
    reserved = [o for o in order_ids if events("stock_reserved", order_id=o)]
    rejected = [o for o in order_ids if events("reservation_rejected", order_id=o)]
    assert len(reserved) == 10 and len(rejected) == 30
    for order_id in rejected:
        assert events("reservation_rejected", order_id=order_id)[0]["shortages"] == [
            {"sku": sku, "requested": 1, "available": 0}
        ]
    assert levels(engine, sku) == {"main": (10, 10)}
    assert held_by_active_reservations(engine, sku) == {"main": 10}
    assert call(inventory, "get_stock", sku)["total"]["available"] == 0
    with engine.connect() as conn:
        active = conn.execute(
            select(func.count()).where(
                Reservation.order_id.in_([uuid.UUID(o) for o in order_ids]),
                Reservation.status == "active",
            )
        ).scalar()
    assert active == 10
    assert handler_failures(caplog) == []


def test_crossing_orders_and_admin_changes_do_not_deadlock(
    inventory, listener, publish, rpc_proxy, engine, caplog
):
    """Orders naming two SKUs in either order, split over warehouses, racing with stock
    adjustments, then half committed and half cancelled at once: every handler succeeds
    the first time (a deadlock would fail one) and the totals add up."""
    caplog.set_level(logging.WARNING)
    shuffle = random.Random(4).shuffle
    a, b = sorted([new_sku(), new_sku()])
    call(inventory, "set_stock", a, "main", 20)
    call(inventory, "set_stock", a, "east", 40)
    call(inventory, "set_stock", b, "main", 15)
    call(inventory, "set_stock", b, "west", 50)
    order_ids = [new_id() for _ in range(30)]
    adjustments = []
    for index, order_id in enumerate(order_ids):
        lines = [(a, 2), (b, 2)]
        shuffle(lines)
        publish("order_created", order_created(order_id, *lines))
        if index % 3 == 0:
            adjustments.append(rpc_proxy.inventory.adjust_stock.call_async(a, "east", 1, "found"))
    for reply in adjustments:
        reply.result()
    wait_until(
        lambda: all(events("stock_reserved", order_id=o) for o in order_ids),
        timeout=60,
        what="every order reserved",
    )
    assert oversold_rows(engine) == 0
    assert levels(engine, a) == {"main": (20, 20), "east": (50, 40)}
    assert levels(engine, b) == {"main": (15, 15), "west": (50, 45)}
    assert held_by_active_reservations(engine, a) == {"main": 20, "east": 40}
    assert held_by_active_reservations(engine, b) == {"main": 15, "west": 45}

    paid, cancelled_ids = order_ids[::2], order_ids[1::2]
    for order_id in order_ids:
        if order_id in paid:
            data = {"order_id": order_id, "user_id": new_id(), "payment_id": new_id()}
            publish("order_paid", data)
        else:
            publish("order_cancelled", cancelled(order_id))
    wait_until(
        lambda: (
            all(events("reservation_committed", order_id=o) for o in paid)
            and all(events("reservation_released", order_id=o) for o in cancelled_ids)
        ),
        timeout=60,
        what="every order settled",
    )
    stock_a, stock_b = call(inventory, "get_stock", a), call(inventory, "get_stock", b)
    assert stock_a["total"] == {"on_hand": 70 - 30, "reserved": 0, "available": 40}
    assert stock_b["total"] == {"on_hand": 65 - 30, "reserved": 0, "available": 35}
    assert held_by_active_reservations(engine, a) == {}
    assert handler_failures(caplog) == []
