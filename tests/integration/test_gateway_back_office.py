"""The back office's reads through the real gateway app and real services, on
RabbitMQ, PostgreSQL and Redis: the payments list of billing administrators
(billing charging through the simulated processor), and the order history a
customer reads beside the operator history of an ops:read token (orders
noting an event that did not apply)."""

import copy
import uuid

import pytest
from nameko.testing.services import entrypoint_waiter

from gateway.api.orders import ORDER_VIEW
from gateway.app import create_app
from services.billing.schemas import PAYMENT_PAGE
from services.billing.service import BillingService
from services.catalog.service import CatalogService
from services.chassis.errors import Conflict
from services.chassis.messaging import rpc
from services.chassis.schemas import validate
from services.chassis.testing import call_entrypoint as call
from services.orders.service import OrdersService
from tests.support import tokens
from tests.support.polling import wait_until
from tests.support.tokens import trust_test_key

pytestmark = pytest.mark.integration
# Billing's and orders' durable handler queues stay out of other modules' way.
OWN_VHOST = True

WAIT = 15

# order id -> the payment token the orders stand-in holds for it.
TOKENS = {}


class OrdersStandIn:
    """Answers billing's orders.get_payment_token as orders does, from TOKENS."""

    name = "orders"

    @rpc
    def get_payment_token(self, order_id):
        token = TOKENS.get(order_id)
        if token is None:
            raise Conflict("an order that is cancelled holds no payment token", {"status": "x"})
        return {"payment_token": token}


@pytest.fixture
def gateway(config, rabbit_vhost, redis_client):
    cfg = copy.deepcopy(config)
    prefix = f"{config['redis']['key_prefix']}backoffice-{uuid.uuid4().hex[:8]}:"
    cfg["redis"]["key_prefix"] = prefix
    cfg["gateway"]["rate_limits"]["groups"]["read"] = "100000/minute"
    app = create_app(cfg)
    trust_test_key(app)  # the auth service is not running here
    yield app
    app.extensions["agora.rpc"].close()
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def bearer(app, scope, user_id=None):
    return tokens.bearer(app, scope, sub=user_id or str(uuid.uuid4()))


# --- GET /v1/payments ------------------------------------------------------------


@pytest.fixture
def billing(container_factory, service_config, start_service):
    stand_in = container_factory(OrdersStandIn, service_config("orders"))
    stand_in.start()
    return start_service(BillingService)


def charge(billing, publish_event, token="tok_visa"):
    """A payment for a new order, charged with ``token``; returns the order id."""
    order_id = str(uuid.uuid4())
    TOKENS[order_id] = token
    data = {
        "order_id": order_id,
        "user_id": str(uuid.uuid4()),
        "amount": {"amount": 1500, "currency": "EUR"},
        "items": [],
    }
    with entrypoint_waiter(billing, "on_payment_requested", timeout=WAIT):
        publish_event("orders", "payment_requested", data)
    return order_id


def test_billing_administrators_list_every_payment_newest_first(gateway, billing, publish_event):
    succeeded = charge(billing, publish_event)
    declined = charge(billing, publish_event, "tok_chargeDeclined")
    http = gateway.test_client()
    admin = bearer(gateway, "billing:admin")

    first = http.get("/v1/payments?limit=1", headers=admin)
    assert first.status_code == 200, first.get_data(as_text=True)
    page = first.get_json()
    validate(PAYMENT_PAGE, page)
    assert [p["order_id"] for p in page["items"]] == [declined]
    second = http.get(f"/v1/payments?limit=1&cursor={page['next_cursor']}", headers=admin)
    assert [p["order_id"] for p in second.get_json()["items"]] == [succeeded]
    assert second.get_json()["items"][0]["receipt"] is not None

    failed = http.get("/v1/payments?status=failed&limit=1", headers=admin).get_json()
    assert [(p["order_id"], p["status"]) for p in failed["items"]] == [(declined, "failed")]

    # Customers never list other people's payments; bad queries are 400s.
    assert http.get("/v1/payments").status_code == 401
    customer = http.get("/v1/payments", headers=bearer(gateway, "profile orders:read"))
    assert customer.status_code == 403
    assert customer.get_json()["error"]["code"] == "insufficient_scope"
    for query in ("cursor=bm90LWEtY3Vyc29y", "status=lost", "limit=0", "limit=x"):
        refused = http.get(f"/v1/payments?{query}", headers=admin)
        assert refused.status_code == 400, query
        assert refused.get_json()["error"]["code"] == "validation_error"


# --- GET /v1/orders/{id}: the customer's history and the operator's ----------------


@pytest.fixture
def catalog(start_service):
    return start_service(CatalogService)


@pytest.fixture
def orders(start_service):
    return start_service(OrdersService)


def test_the_customer_reads_status_changes_and_operators_read_every_note(
    gateway, catalog, orders, publish_event
):
    product = call(
        catalog,
        "create_product",
        {
            "sku": f"BO-{uuid.uuid4().hex[:8]}".upper(),
            "name": "Back office mug",
            "price": {"amount": 900, "currency": "EUR"},
        },
    )
    user_id = str(uuid.uuid4())
    http = gateway.test_client()
    placed = http.post(
        "/v1/orders",
        json={"items": [{"product_id": product["id"], "quantity": 1}], "payment": {"token": "t"}},
        headers={
            **bearer(gateway, "orders:read orders:write", user_id),
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )
    assert placed.status_code == 202, placed.get_data(as_text=True)
    order_id = placed.get_json()["id"]
    # A payment before any reservation does not apply: orders notes it for operators.
    publish_event(
        "billing",
        "payment_succeeded",
        {
            "order_id": order_id,
            "payment_id": str(uuid.uuid4()),
            "user_id": user_id,
            "amount": {"amount": 900, "currency": "EUR"},
        },
    )
    operator = bearer(gateway, "orders:read ops:read", user_id)

    def noted():
        view = http.get(f"/v1/orders/{order_id}", headers=operator).get_json()
        return view if len(view.get("operator_history", ())) == 2 else None

    view = wait_until(noted, WAIT, "the ignored event in the operator history")
    validate(ORDER_VIEW, view)
    assert view["operator_history"][1]["note"] == (
        "ignored billing.payment_succeeded in status pending"
    )
    assert view["history"] == [
        {
            "status": "pending",
            "at": view["history"][0]["at"],
            "reason": None,
            "message": "Order placed",
        }
    ]

    customer = http.get(f"/v1/orders/{order_id}", headers=bearer(gateway, "orders:read", user_id))
    assert customer.status_code == 200
    body = customer.get_json()
    validate(ORDER_VIEW, body)
    assert "operator_history" not in body and "ignored" not in customer.get_data(as_text=True)
    assert body["history"] == view["history"] and body["cancellation_reason"] is None

    cancelled = http.post(
        f"/v1/orders/{order_id}/cancel", headers=bearer(gateway, "orders:write", user_id)
    )
    assert cancelled.status_code == 200
    body = cancelled.get_json()
    assert body["cancellation_reason"] == "You cancelled the order"
    assert body["history"][-1]["message"] == "Cancelled: you cancelled the order"
    assert "operator_history" not in body
