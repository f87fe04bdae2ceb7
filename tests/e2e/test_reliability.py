"""Nothing lost, doubled or oversold: services killed with SIGKILL in the middle
of a batch of orders, duplicated events, a poison message in the dead letters,
and an outside consumer written with plain pika."""

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from kombu import Connection, Exchange, Producer

from services.chassis.config import ROOT
from services.chassis.messaging import event_envelope
from services.orders.schemas import EVENTS as ORDER_EVENTS
from tests.e2e.commerce import TERMINAL, PoliteSession

pytestmark = pytest.mark.e2e


def agora(platform, *args, timeout=60):
    """Run the ``agora`` command line against the test platform."""
    return subprocess.run(
        [sys.executable, "-m", "agora", *args],
        env={**os.environ, **platform.env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def publish(platform, service, event_type, body, headers=None):
    with Connection(
        platform.config["amqp"]["uri"], transport_options={"confirm_publish": True}
    ) as connection:
        exchange = Exchange(f"{service}.events", type="topic", durable=True)
        Producer(connection.channel(), exchange=exchange).publish(
            body, routing_key=event_type, serializer="json", delivery_mode=2, headers=headers
        )


@pytest.mark.parametrize("victim", ["inventory", "billing"])
def test_a_service_killed_mid_batch_loses_nothing(shop, ledgers, platform, victim):
    """SIGKILL one saga participant (every instance of it) while 40 orders are in
    flight, start it again: every order ends in a terminal state, nothing is
    charged twice, and stock is conserved."""
    orders_survive_killed_processes(shop, ledgers, platform, platform.processes(victim))


def orders_survive_killed_processes(shop, ledgers, platform, victims):
    """SIGKILL the processes ``victims`` (names in ``platform.children``) while 40
    orders are in flight, start them again: every order ends in a terminal
    state, nothing is charged twice, and stock is conserved (what was on hand =
    on hand now + sold, nothing left reserved)."""
    product = shop.product(stock=30, price=450)
    customers = [shop.customer() for _ in range(8)]

    def place(n):
        _, token = customers[n % len(customers)]
        with PoliteSession() as session:
            response = shop.place(token, [(product["id"], 1)], session=session)
        assert response.status_code == 202, response.text
        return response.json()["id"], token

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(place, n) for n in range(40)]
        time.sleep(0.3)  # some orders are mid-saga now
        for victim in victims:
            platform.children[victim].kill()  # SIGKILL: no clean shutdown
        placed = [f.result() for f in futures]
    time.sleep(1.0)
    for victim in victims:
        platform.children[victim].start()
    platform.wait_ready()

    outcomes = {}
    for order_id, token in placed:
        view = shop.wait_for(token, order_id, TERMINAL, timeout=120)
        outcomes[order_id] = view["status"]
    confirmed = [o for o, s in outcomes.items() if s == "confirmed"]
    assert set(outcomes.values()) <= {"confirmed", "rejected", "expired"}
    assert len(confirmed) <= 30

    charges = ledgers.charges_per_order(outcomes)
    assert all(count <= 1 for count in charges.values()), charges  # never twice
    assert all(charges[o] == 1 for o in confirmed)

    def settled():
        stock = shop.stock(product["sku"])["total"]
        return stock["reserved"] == 0 and stock["on_hand"] + ledgers.sold(product["sku"]) == 30

    deadline = time.monotonic() + 30
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.5)
    stock = shop.stock(product["sku"])["total"]
    assert stock["reserved"] == 0
    assert stock["on_hand"] + ledgers.sold(product["sku"]) == 30
    assert stock["available"] == stock["on_hand"]
    assert ledgers.sold(product["sku"]) == len(confirmed)


def test_a_duplicated_event_has_one_effect(shop, ledgers, platform, event_tap):
    """The payment request of a confirmed order, delivered again (same event id)
    and sent again as a new event: billing charges once."""
    _, token = shop.customer()
    product = shop.product(stock=3)
    order = shop.place(token, [(product["id"], 1)]).json()
    view = shop.wait_for(token, order["id"], {"confirmed"})
    request = {
        "order_id": order["id"],
        "user_id": view["user_id"],
        "amount": view["total"],
        "items": view["items"],
    }
    version = ORDER_EVENTS["payment_requested"]["version"]
    envelope = event_envelope("orders", "payment_requested", request, version)
    publish(platform, "orders", "payment_requested", envelope)
    publish(platform, "orders", "payment_requested", envelope)  # redelivered
    publish(  # the same command, as a new event
        platform,
        "orders",
        "payment_requested",
        event_envelope("orders", "payment_requested", request, version),
    )
    time.sleep(2.0)  # let billing handle all three
    assert ledgers.charges_per_order([order["id"]]) == {order["id"]: 1}
    payment = shop.order(token, order["id"])["payment"]
    assert payment["status"] == "succeeded" and payment["attempts"] == 1


def test_a_poison_message_is_dead_lettered_and_can_be_replayed(platform):
    """An order_confirmed event notifications cannot handle fails max_attempts
    times with backoff, then waits in notifications' dead letters, where the
    command line lists, shows, replays and finally discards it."""
    poison = event_envelope("orders", "order_confirmed", {"order_id": str(uuid.uuid4())})
    # Marked, so the event-contract check knows it was not emitted by a service.
    publish(platform, "orders", "order_confirmed", poison, {"x-agora-e2e-poison": True})
    attempts = platform.config["events"]["max_attempts"]

    def listed():
        result = agora(platform, "dead-letters", "list", "--service", "notifications")
        assert result.returncode == 0, result.stderr
        letters = [json.loads(line) for line in result.stdout.splitlines()]
        return [d for d in letters if d["event_id"] == poison["event_id"]]

    deadline = time.monotonic() + 30
    while not listed() and time.monotonic() < deadline:
        time.sleep(0.5)
    [letter] = listed()
    assert letter["attempts"] == attempts
    assert letter["type"] == "orders.order_confirmed"
    assert letter["queue"].startswith("evt-orders-order_confirmed--notifications.")
    shown = agora(
        platform, "dead-letters", "show", poison["event_id"], "--service", "notifications"
    )
    assert json.loads(shown.stdout)["event"] == poison

    replayed = agora(
        platform, "dead-letters", "replay", poison["event_id"], "--service", "notifications"
    )
    assert "1 dead letter(s) replayed" in replayed.stdout
    # Still poison: it goes through its attempts again and comes back.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        again = listed()
        if (
            again
            and again[0]["failed_at"] >= letter["failed_at"]
            and again[0]["attempts"] == attempts
        ):
            break
        time.sleep(0.5)
    assert listed(), "the replayed poison message did not come back to the dead letters"
    discarded = agora(
        platform, "dead-letters", "discard", poison["event_id"], "--service", "notifications"
    )
    assert discarded.returncode == 0, discarded.stderr
    assert not listed()


def test_an_outside_consumer_receives_the_order_and_billing_events(shop, platform):
    """integrations/consumer.py: plain pika, the integration broker user, its own queue."""
    from services.chassis.config import amqp_uri

    name = f"e2e-{uuid.uuid4().hex[:8]}"
    queue = f"integration.{name}"
    command = [
        sys.executable,
        str(ROOT / "integrations" / "consumer.py"),
        "--amqp-uri",
        amqp_uri(platform.config, "integration"),
        "--name",
        name,
    ]
    consumer = subprocess.Popen(
        [*command, "--count", "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _queue_exists(platform, queue):
            time.sleep(0.2)
        _, token = shop.customer()
        product = shop.product(stock=2)
        order = shop.place(token, [(product["id"], 1)]).json()
        out, err = consumer.communicate(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait(5)
    events = [json.loads(line) for line in out.splitlines()]
    types = {e["type"] for e in events if e["data"].get("order_id") == order["id"]}
    assert types == {
        "orders.order_created",
        "orders.payment_requested",
        "orders.order_paid",
        "orders.order_confirmed",
        "billing.payment_succeeded",
        "billing.receipt_issued",
    }, (types, err)
    deleted = subprocess.run([*command, "--delete"], capture_output=True, text=True, timeout=60)
    assert deleted.returncode == 0, deleted.stderr
    assert not _queue_exists(platform, queue)


def _queue_exists(platform, queue):
    with Connection(platform.config["amqp"]["uri"]) as connection:
        try:
            connection.channel().queue_declare(queue, passive=True)
            return True
        except Exception:
            return False
