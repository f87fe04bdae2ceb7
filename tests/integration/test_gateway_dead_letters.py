"""/v1/ops/dead-letters through the real gateway app and the real billing
service, on RabbitMQ and PostgreSQL: a real dead letter (an event billing's
handler failed on ``events.max_attempts`` times) is listed, shown, replayed
once its cause is gone, and discarded. Billing reads its own dead-letter queue
with its own broker user; the gateway only calls it. The other event-handling
services are not running here: the list names them in ``unavailable``."""

import copy
import uuid

import pytest

from gateway.api.ops import DEAD_LETTER_LIST
from gateway.app import create_app
from services.billing.service import BillingService
from services.chassis.schemas import DEAD_LETTER_DETAIL, DEAD_LETTER_SERVICES, linear_validator
from services.orders.service import OrdersService
from tests.support.polling import wait_until
from tests.support.tokens import bearer, trust_test_key

pytestmark = pytest.mark.integration
# Billing's and orders' durable handler queues stay out of other modules' way.
OWN_VHOST = True

PATH = "/v1/ops/dead-letters"
WAIT = 20  # seconds: max_attempts deliveries with their backoff, on a busy machine


@pytest.fixture
def gateway(config, rabbit_vhost, redis_client):
    cfg = copy.deepcopy(config)
    cfg["redis"]["key_prefix"] = (
        f"{config['redis']['key_prefix']}deadletters-{uuid.uuid4().hex[:8]}:"
    )
    app = create_app(cfg)
    trust_test_key(app)  # the auth service is not running here
    yield app
    app.extensions["agora.rpc"].close()
    for key in redis_client.scan_iter(match=f"{cfg['redis']['key_prefix']}*"):
        redis_client.delete(key)


@pytest.fixture
def billing(container_factory, service_config):
    """Billing with no grace for an outage of orders: its payment request is
    dead-lettered after max_attempts; and no circuit to orders that would still
    be open when the letter is replayed."""
    settings = copy.deepcopy(service_config("billing"))
    settings["AGORA"]["rpc_clients"]["orders"] = {
        "timeout": 0.5,
        "retries": 0,
        "breaker": {"fail_max": 1000, "reset_timeout": 1},
    }
    settings["AGORA"]["events"]["outage_retry_window"] = 0
    container = container_factory(BillingService, settings)
    container.start()
    return container


def letters(app):
    response = app.test_client().get(PATH, headers=bearer(app, "ops:read"))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert not list(linear_validator(DEAD_LETTER_LIST).iter_errors(body))
    return body


def letter_of(app, event_id):
    found = [d for d in letters(app)["items"] if d["event_id"] == event_id]
    return found[0] if found else None


def payment_request(order_id=None):
    return {
        "order_id": order_id or str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "amount": {"amount": 1299, "currency": "EUR"},
        "items": [],
    }


def dead_letter(app, publish_event, data):
    """Publish orders.payment_requested with ``data``; wait for its dead letter."""
    envelope = publish_event("orders", "payment_requested", data)
    letter = wait_until(
        lambda: letter_of(app, envelope["event_id"]), WAIT, "the event dead-lettered"
    )
    return envelope, letter


def test_dead_letters_need_ops_read_and_changes_ops_write(gateway):
    http = gateway.test_client()
    letter = f"{PATH}/billing/{uuid.uuid4()}"
    assert http.get(PATH).status_code == 401
    customer = http.get(PATH, headers=bearer(gateway, "profile orders:read"))
    assert customer.status_code == 403
    assert customer.get_json()["error"]["code"] == "insufficient_scope"
    reader = bearer(gateway, "ops:read")
    for response in (
        http.post(f"{letter}/replay", headers=reader),
        http.delete(letter, headers=reader),
    ):
        assert response.status_code == 403, response.get_data(as_text=True)
        assert response.get_json()["error"]["code"] == "insufficient_scope"
    assert http.post(f"{letter}/replay").status_code == 401


def test_a_dead_letter_is_listed_shown_and_replayed_once_its_cause_is_gone(
    gateway, billing, publish_event, start_service, service_engine, config
):
    # Orders is not running: billing cannot read the payment token.
    order_id = str(uuid.uuid4())
    envelope, letter = dead_letter(gateway, publish_event, payment_request(order_id))
    event_id = envelope["event_id"]
    assert letter["service"] == "billing"
    assert letter["type"] == "orders.payment_requested"
    assert letter["queue"].startswith("evt-orders-payment_requested")
    assert letter["attempts"] == config["events"]["max_attempts"]
    assert "orders" in letter["error"]
    assert letter["failed_at"].endswith("Z")

    # The other event-handling services are not running: named, not a 503.
    body = letters(gateway)
    assert sorted(body["unavailable"]) == sorted(set(DEAD_LETTER_SERVICES) - {"billing"})
    # Listing consumes nothing.
    assert letter_of(gateway, event_id) == letter
    narrowed = gateway.test_client().get(
        f"{PATH}?service=billing", headers=bearer(gateway, "ops:read")
    )
    assert narrowed.status_code == 200 and narrowed.get_json()["unavailable"] == []

    http = gateway.test_client()
    shown = http.get(f"{PATH}/billing/{event_id}", headers=bearer(gateway, "ops:read"))
    assert shown.status_code == 200, shown.get_data(as_text=True)
    detail = shown.get_json()
    assert not list(linear_validator(DEAD_LETTER_DETAIL).iter_errors(detail))
    assert detail["event"] == envelope
    assert {k: detail[k] for k in letter} == letter

    # Orders is back (it knows no such order: billing voids the payment).
    start_service(OrdersService)
    replayed = http.post(f"{PATH}/billing/{event_id}/replay", headers=bearer(gateway, "ops:write"))
    assert replayed.status_code == 200, replayed.get_data(as_text=True)
    assert replayed.get_json() == {"replayed": 1}

    def payment_status():
        with service_engine("billing").connect() as conn:
            return conn.exec_driver_sql(
                "SELECT status FROM payments WHERE order_id = %s", (order_id,)
            ).scalar()

    assert wait_until(payment_status, WAIT, "the replayed event handled") == "voided"
    assert letter_of(gateway, event_id) is None
    again = http.post(f"{PATH}/billing/{event_id}/replay", headers=bearer(gateway, "ops:write"))
    assert again.status_code == 404 and again.get_json()["error"]["code"] == "not_found"


def test_a_dead_letter_can_be_discarded(gateway, billing, publish_event):
    # Not a payment request billing can read: it fails on every delivery.
    envelope, _ = dead_letter(gateway, publish_event, {"order_id": "not-a-uuid"})
    event_id = envelope["event_id"]
    http = gateway.test_client()
    writer = bearer(gateway, "ops:read ops:write")
    discarded = http.delete(f"{PATH}/billing/{event_id}", headers=writer)
    assert discarded.status_code == 204, discarded.get_data(as_text=True)
    assert letter_of(gateway, event_id) is None
    for response in (
        http.delete(f"{PATH}/billing/{event_id}", headers=writer),
        http.get(f"{PATH}/billing/{event_id}", headers=writer),
    ):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        f"{PATH}/catalog/{uuid.uuid4()}",  # handles no events: no dead letters
        f"{PATH}/nosuch/{uuid.uuid4()}",
        f"{PATH}/billing/{'x' * 101}",
        f"{PATH}/billing/-dash",
    ],
)
def test_unknown_services_and_ids_are_404(gateway, path):
    response = gateway.test_client().get(path, headers=bearer(gateway, "ops:read"))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_an_unknown_service_filter_is_a_validation_error(gateway):
    response = gateway.test_client().get(
        f"{PATH}?service=catalog", headers=bearer(gateway, "ops:read")
    )
    assert response.status_code == 400
    assert "service" in response.get_json()["error"]["details"]
