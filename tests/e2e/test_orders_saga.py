"""The order saga end to end: the gateway, seven service processes, RabbitMQ,
PostgreSQL, Redis and a real SMTP server. Every path of the status machine,
with its compensations, as a customer and an operator see it."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.commerce import PoliteSession, bearer, is_verification_text
from tests.e2e.conftest import SAGA_TIMEOUT
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e


def emails(smtp, to, order_id, expected, timeout=20.0):
    """Wait for ``expected`` emails to ``to`` mentioning the order; return them."""

    def found():
        mails = [m for m in smtp.messages(to=to) if order_id in m.get_content()]
        return len(mails) >= expected and mails

    return wait_until(found, timeout, f"{expected} emails about order {order_id}")


# --- the happy path ------------------------------------------------------------


def test_an_order_is_reserved_charged_and_confirmed(shop, smtp, ledgers):
    email, token = shop.verified_customer(smtp)
    product = shop.product(stock=10, price=1250)
    response = shop.place(token, [(product["id"], 2)])
    assert response.status_code == 202, response.text
    order = response.json()
    assert response.headers["Location"] == f"/v1/orders/{order['id']}"
    assert order["status"] == "pending"
    assert order["total"] == {"amount": 2500, "currency": "EUR"}
    assert order["items"][0]["name"] == product["name"]
    assert order["items"][0]["unit_price"] == {"amount": 1250, "currency": "EUR"}

    view = shop.wait_for(token, order["id"], {"confirmed"})
    assert [h["status"] for h in view["history"]] == ["pending", "reserved", "paid", "confirmed"]
    assert view["reservation"]["status"] == "committed"
    assert view["payment"]["status"] == "succeeded"
    assert view["payment"]["amount"] == {"amount": 2500, "currency": "EUR"}
    assert view["payment"]["receipt"]["number"]
    assert view["payment_id"] == view["payment"]["id"]

    stock = shop.stock(product["sku"])
    assert stock["total"] == {"on_hand": 8, "reserved": 0, "available": 8}
    assert ledgers.charges_per_order([order["id"]]) == {order["id"]: 1}

    # The confirmation and the receipt, by email.
    subjects = sorted(m["Subject"] for m in emails(smtp, email, order["id"], 2))
    assert any("is confirmed" in s for s in subjects), subjects
    assert any(s.startswith("Receipt ") for s in subjects), subjects
    listed = requests.get(
        f"{shop.base}/v1/notifications", headers=bearer(token), timeout=10
    ).json()["items"]
    assert {n["template"] for n in listed} >= {"order_confirmed", "receipt"}
    assert all(n["recipient"] == email for n in listed)


def test_no_event_carries_the_payment_token(shop, platform, ledgers):
    """A consumer bound with ``#`` to every events exchange (as an outside
    integration could be) sees an order through to confirmed, and never the card
    token; billing read it from orders over RPC, and orders forgot it after."""
    from kombu import Connection, Queue

    from agora.asyncapi import EVENT_SERVICES

    _, token = shop.customer()
    product = shop.product(stock=5)
    with Connection(platform.config["amqp"]["uri"]) as connection:
        channel = connection.channel()
        tap = Queue(f"e2e-token-tap-{uuid.uuid4().hex}", exclusive=True)(channel)
        tap.declare()
        for service in EVENT_SERVICES:
            tap.bind_to(exchange=f"{service}.events", routing_key="#")

        order = shop.place(token, [(product["id"], 1)], card="tok_visa").json()
        view = shop.wait_for(token, order["id"], {"confirmed"})
        assert view["payment"]["status"] == "succeeded"

        bodies = []

        def saw_the_whole_order():
            while (message := tap.get(no_ack=True)) is not None:
                bodies.append(message.body)
            text = "".join(b.decode() if isinstance(b, bytes) else str(b) for b in bodies)
            return order["id"] in text and '"orders.order_confirmed"' in text

        wait_until(saw_the_whole_order, timeout=20, what="the order's events on the tap")
        channel.close()
    texts = [b.decode() if isinstance(b, bytes) else str(b) for b in bodies]
    requested = [t for t in texts if '"orders.payment_requested"' in t and order["id"] in t]
    assert len(requested) == 1, texts
    assert not [t for t in texts if "tok_visa" in t]
    assert ledgers.charges_per_order([order["id"]]) == {order["id"]: 1}
    assert ledgers.payment_token(order["id"]) is None


def test_a_customer_who_gives_a_phone_number_gets_text_messages_too(shop, smtp, sms):
    email, token = shop.verified_customer(smtp)
    me = f"{shop.base}/v1/users/me"
    refused = requests.patch(
        me, json={"phone": "0151 1234 5678"}, headers=bearer(token), timeout=10
    )
    assert refused.status_code == 400, refused.text
    assert set(refused.json()["error"]["details"]) == {"phone"}
    phone = f"+49151{uuid.uuid4().int % 10**8:08d}"
    profile = requests.patch(me, json={"phone": phone}, headers=bearer(token), timeout=10)
    assert profile.status_code == 200 and profile.json()["phone"] == phone
    assert profile.json()["phone_verified"] is False
    # The code texted to the new number: a wrong one is refused, the right one proves it.
    wrong = requests.post(
        f"{me}/phone-verification", json={"code": "000000"}, headers=bearer(token), timeout=10
    )
    if wrong.status_code != 200:  # one in a million: the code was 000000
        assert wrong.status_code == 400, wrong.text
        assert set(wrong.json()["error"]["details"]) == {"code"}
    assert shop.verify_phone(sms, token, phone)["phone_verified"] is True

    product = shop.product(stock=5)
    order = shop.place(token, [(product["id"], 1)]).json()
    shop.wait_for(token, order["id"], {"confirmed"})

    def texts():
        return [
            r["json"]
            for r in list(sms.requests)
            if r["json"]["to"] == phone and not is_verification_text(r["json"]["body"])
        ]

    sent = wait_until(lambda: len(texts()) >= 2 and texts(), 20, "the order's text messages")
    reference = order["id"][:8].upper()
    bodies = sorted(text["body"] for text in sent)
    assert len(bodies) == 2, bodies
    assert bodies[0] == f"Agora: order {reference} is confirmed. Total EUR 10.00.", bodies
    assert bodies[1].startswith("Agora: receipt R-") and f"order {reference}" in bodies[1]
    emails(smtp, email, order["id"], 2)
    listed = requests.get(
        f"{shop.base}/v1/notifications", headers=bearer(token), timeout=10
    ).json()["items"]
    by_channel = {(n["channel"], n["template"]): n["recipient"] for n in listed}
    assert by_channel[("sms", "order_confirmed")] == phone
    assert by_channel[("email", "order_confirmed")] == email


def test_the_same_idempotency_key_returns_the_same_order(shop):
    _, token = shop.customer()
    product = shop.product(stock=5)
    key = str(uuid.uuid4())
    first = shop.place(token, [(product["id"], 1)], key=key)
    again = shop.place(token, [(product["id"], 1)], key=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = shop.place(token, [(product["id"], 2)], key=key)
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "conflict"
    shop.wait_for(token, first.json()["id"], {"confirmed"})
    assert shop.stock(product["sku"])["total"]["on_hand"] == 4  # one order, not two


def test_orders_are_private_and_listed_newest_first(shop):
    _, token = shop.customer()
    _, stranger = shop.customer()
    product = shop.product(stock=5)
    ids = [shop.place(token, [(product["id"], 1)]).json()["id"] for _ in range(2)]
    listed = requests.get(f"{shop.base}/v1/orders", headers=bearer(token), timeout=10).json()
    assert [o["id"] for o in listed["items"]] == ids[::-1]
    response = requests.get(f"{shop.base}/v1/orders/{ids[0]}", headers=bearer(stranger), timeout=10)
    assert response.status_code == 404
    assert shop.cancel(stranger, ids[0]).status_code == 404


def test_bad_orders_get_a_clear_error(shop):
    _, token = shop.customer()
    product = shop.product(stock=5)
    no_key = requests.post(
        f"{shop.base}/v1/orders",
        json={
            "items": [{"product_id": product["id"], "quantity": 1}],
            "payment": {"token": "tok_visa"},
        },
        headers=bearer(token),
        timeout=10,
    )
    assert no_key.status_code == 400
    assert "Idempotency-Key" in no_key.json()["error"]["details"]
    unknown = shop.place(token, [(str(uuid.uuid4()), 1)])
    assert unknown.status_code == 400
    assert "items.0.product_id" in unknown.json()["error"]["details"]
    zero = shop.place(token, [(product["id"], 0)])
    assert zero.status_code == 400


# --- failures and compensations ------------------------------------------------


def test_out_of_stock_is_rejected_and_nothing_is_charged(shop, smtp, ledgers):
    email, token = shop.verified_customer(smtp)
    product = shop.product(stock=1)
    order = shop.place(token, [(product["id"], 2)]).json()
    view = shop.wait_for(token, order["id"])
    assert view["status"] == "rejected"
    assert view["reason"] == "out_of_stock"
    # The view names the line that was short and what was available, as the email does.
    assert view["shortages"] == [
        {"sku": product["sku"], "name": product["name"], "requested": 2, "available": 1}
    ]
    # The customer reads the change in words; the note with the SKUs is for operators.
    assert view["history"][-1]["reason"] == "out_of_stock"
    assert view["history"][-1]["message"] == "Not enough stock: the order could not be placed"
    assert "operator_history" not in view
    assert view["payment"] is None
    assert ledgers.charges_per_order([order["id"]]) == {order["id"]: 0}
    assert shop.stock(product["sku"])["total"] == {"on_hand": 1, "reserved": 0, "available": 1}
    assert emails(smtp, email, order["id"], 1)


@pytest.mark.parametrize(
    "card, code",
    [("tok_chargeDeclined", "card_declined"), ("tok_processingError", "processing_error")],
)
def test_a_failed_payment_releases_the_stock_and_cancels(shop, smtp, ledgers, platform, card, code):
    email, token = shop.verified_customer(smtp)
    product = shop.product(stock=3)
    order = shop.place(token, [(product["id"], 2)], card=card).json()
    view = shop.wait_for(token, order["id"])
    assert view["status"] == "cancelled"
    statuses = [h["status"] for h in view["history"]]
    assert statuses == ["pending", "reserved", "payment_failed", "cancelled"]
    expected = {
        "card_declined": "Your card was declined",
        "processing_error": "The payment could not be processed",
    }
    assert view["cancellation_reason"] == expected[code]
    assert view["payment"]["status"] == "failed"
    assert view["payment"]["failure"]["code"] == code
    if code == "processing_error":  # transient: retried before giving up
        assert (
            view["payment"]["attempts"] == platform.config["services"]["billing"]["charge_attempts"]
        )
    assert view["reservation"]["status"] == "released"
    assert shop.stock(product["sku"])["total"] == {"on_hand": 3, "reserved": 0, "available": 3}
    assert ledgers.charges_per_order([order["id"]]) == {order["id"]: 0}
    subjects = [m["Subject"] for m in emails(smtp, email, order["id"], 2)]
    assert any("did not go through" in s for s in subjects), subjects


def test_a_payment_that_times_out_fails_and_cancels(shop, ledgers):
    _, token = shop.customer()
    product = shop.product(stock=3)
    order = shop.place(token, [(product["id"], 1)], card="tok_timeout").json()
    view = shop.wait_for(token, order["id"], timeout=90)
    assert view["status"] == "cancelled"
    assert view["payment"]["failure"]["code"] == "timeout"
    assert shop.stock(product["sku"])["total"]["reserved"] == 0
    assert ledgers.charges_per_order([order["id"]]) == {order["id"]: 0}


def test_cancelling_a_confirmed_order_refunds_and_restocks(shop, smtp):
    email, token = shop.verified_customer(smtp)
    product = shop.product(stock=4, price=700)
    order = shop.place(token, [(product["id"], 3)]).json()
    shop.wait_for(token, order["id"], {"confirmed"})
    assert shop.stock(product["sku"])["total"]["on_hand"] == 1
    response = shop.cancel(token, order["id"])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    view = shop.wait_for(
        token,
        order["id"],
        {"cancelled"},
        check=lambda v: (
            v["payment"]["status"] == "refunded"
            and v["reservation"]["status"] == "released"
            # orders notes billing's refund_issued in the history, after the refund
            and v["history"][-1]["message"] == "Refunded"
        ),
    )
    assert view["payment"]["refunded"] == {"amount": 2100, "currency": "EUR"}
    assert [h["message"] for h in view["history"]][-2:] == [
        "Cancelled: you cancelled the order; your payment is refunded",
        "Refunded",
    ]
    assert view["cancellation_reason"] == "You cancelled the order; your payment is refunded"
    assert shop.stock(product["sku"])["total"] == {"on_hand": 4, "reserved": 0, "available": 4}
    subjects = [m["Subject"] for m in emails(smtp, email, order["id"], 4)]
    assert any(s.startswith("Refund of") for s in subjects), subjects
    assert any("cancelled" in s for s in subjects), subjects
    # A cancelled order cannot be cancelled again.
    again = shop.cancel(token, order["id"])
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


def test_refunds_and_disputes_through_the_admin_routes(shop, admin_token):
    _, token = shop.customer()
    product = shop.product(stock=2, price=5000)
    order = shop.place(token, [(product["id"], 1)]).json()
    view = shop.wait_for(token, order["id"], {"confirmed"})
    payment_id = view["payment"]["id"]
    admin = bearer(admin_token)
    # A customer can read their payment but not refund it.
    mine = requests.get(f"{shop.base}/v1/payments/{payment_id}", headers=bearer(token), timeout=10)
    assert mine.status_code == 200 and mine.json()["order_id"] == order["id"]
    refused = requests.post(
        f"{shop.base}/v1/payments/{payment_id}/refunds", json={}, headers=bearer(token), timeout=10
    )
    assert refused.status_code == 403
    partial = requests.post(
        f"{shop.base}/v1/payments/{payment_id}/refunds",
        json={"amount": {"amount": 1500, "currency": "EUR"}, "reason": "damaged box"},
        headers={**admin, "Idempotency-Key": "refund-1"},
        timeout=10,
    )
    assert partial.status_code == 201, partial.text
    assert partial.json()["status"] == "partially_refunded"
    replay = requests.post(
        f"{shop.base}/v1/payments/{payment_id}/refunds",
        json={"amount": {"amount": 1500, "currency": "EUR"}, "reason": "damaged box"},
        headers={**admin, "Idempotency-Key": "refund-1"},
        timeout=10,
    )
    assert replay.json()["refunded"] == {"amount": 1500, "currency": "EUR"}  # refunded once
    too_much = requests.post(
        f"{shop.base}/v1/payments/{payment_id}/refunds",
        json={"amount": {"amount": 4000, "currency": "EUR"}},
        headers=admin,
        timeout=10,
    )
    assert too_much.status_code == 409
    dispute = requests.post(
        f"{shop.base}/v1/payments/{payment_id}/disputes",
        json={"reason": "not received"},
        headers=admin,
        timeout=10,
    )
    assert dispute.status_code == 201, dispute.text
    opened = dispute.json()["disputes"][0]
    assert opened["status"] == "open"
    assert opened["amount"] == {"amount": 3500, "currency": "EUR"}
    resolved = requests.post(
        f"{shop.base}/v1/payments/{payment_id}/disputes/{opened['id']}/resolution",
        json={"outcome": "won"},
        headers=admin,
        timeout=10,
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["disputes"][0]["status"] == "won"
    twice = requests.post(
        f"{shop.base}/v1/payments/{payment_id}/disputes/{opened['id']}/resolution",
        json={"outcome": "lost"},
        headers=admin,
        timeout=10,
    )
    assert twice.status_code == 409


def test_a_stuck_saga_expires_with_its_compensations_done(shop, platform, ledgers):
    """Billing is down: the order waits reserved until its deadline, then
    expires and its stock is released. When billing comes back, the late
    payment request charges nothing."""
    _, token = shop.customer()
    product = shop.product(stock=5)
    platform.stop("billing")
    try:
        order = shop.place(token, [(product["id"], 2)]).json()
        shop.wait_for(token, order["id"], {"reserved"}, timeout=30)
        assert shop.stock(product["sku"])["total"]["reserved"] == 2
        view = shop.wait_for(token, order["id"], {"expired"}, timeout=SAGA_TIMEOUT + 30)
        assert view["history"][-1]["status"] == "expired"
        released = shop.wait_for(
            token,
            order["id"],
            {"expired"},
            check=lambda v: v["reservation"]["status"] == "released",
        )
        assert released["payment"] is None or released["payment"]["state"] == "unavailable"
    finally:
        platform.start("billing")
        platform.wait_ready()
    assert shop.stock(product["sku"])["total"] == {"on_hand": 5, "reserved": 0, "available": 5}
    view = shop.wait_for(
        token,
        order["id"],
        {"expired"},
        timeout=30,
        check=lambda v: isinstance(v["payment"], dict) and v["payment"].get("status") == "voided",
    )
    assert ledgers.charges_per_order([order["id"]]) == {order["id"]: 0}


# --- concurrency -----------------------------------------------------------------


def test_two_hundred_orders_for_fifty_in_stock(shop, smtp, ledgers):
    """200 customers order the last 50 units at once: exactly 50 are confirmed,
    150 rejected, never below zero, 50 charges, 50 confirmation emails."""
    product = shop.product(stock=50, price=300)
    customers = [shop.verified_customer(smtp) for _ in range(20)]  # ten orders each

    def place(n):
        email, token = customers[n % len(customers)]
        with PoliteSession() as session:
            response = shop.place(token, [(product["id"], 1)], session=session)
        assert response.status_code == 202, response.text
        return response.json()["id"], token

    with ThreadPoolExecutor(max_workers=50) as pool:
        placed = list(pool.map(place, range(200)))
    assert len({order_id for order_id, _ in placed}) == 200

    lowest = []
    outcomes = {}
    for order_id, token in placed:
        view = shop.wait_for(token, order_id, timeout=120)
        outcomes[order_id] = view["status"]
        lowest.append(shop.stock(product["sku"])["total"]["available"])
    counts = {s: list(outcomes.values()).count(s) for s in set(outcomes.values())}
    assert counts == {"confirmed": 50, "rejected": 150}, counts
    assert min(lowest) >= 0
    assert shop.stock(product["sku"])["total"] == {"on_hand": 0, "reserved": 0, "available": 0}
    assert ledgers.sold(product["sku"]) == 50
    charges = ledgers.charges_per_order(outcomes)
    confirmed = [o for o, s in outcomes.items() if s == "confirmed"]
    assert sum(charges.values()) == 50 and all(charges[o] == 1 for o in confirmed)

    def confirmations():
        return [
            m
            for m in smtp.messages()
            if "is confirmed" in (m["Subject"] or "")
            and any(o in m.get_content() for o in confirmed)
        ]

    deadline = time.monotonic() + 60
    while len(confirmations()) < 50 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(confirmations()) == 50
