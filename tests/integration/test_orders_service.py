"""The orders service in a real container, with the real catalog, PostgreSQL and RabbitMQ.

The saga is driven by publishing inventory and billing envelopes exactly as
those services would, and observed through a listener of the orders events.
"""

import copy
import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import text

from services.catalog.service import CatalogService
from services.chassis.errors import CancellationWindowClosed, Conflict, NotFound, ValidationError
from services.chassis.messaging import event_handler
from services.chassis.schemas import validate
from services.chassis.testing import call_entrypoint as call
from services.orders.schemas import CREATE_RESULT, EVENTS, ORDER, ORDER_PAGE
from services.orders.service import OrdersService
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
# Its services' durable event queues stay out of other modules' way.
OWN_VHOST = True

TIMEOUT = 15.0


@pytest.fixture(scope="module", autouse=True)
def orders_database(databases):
    """The orders database, migrated by the session's ``databases`` fixture."""


@pytest.fixture(scope="module")
def orders_db(service_engine):
    """The orders database, to look at what the RPCs do not show."""
    return service_engine("orders")


def sql(engine, statement, **params):
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return result.all() if result.returns_rows else result.rowcount


class OrdersListener:
    """Every orders event, as (event name, envelope)."""

    name = "orders_test_listener"
    received = []

    def _got(self, name, envelope):
        OrdersListener.received.append((name, envelope))

    @event_handler("orders", "order_created")
    def on_order_created(self, envelope):
        self._got("order_created", envelope)

    @event_handler("orders", "payment_requested")
    def on_payment_requested(self, envelope):
        self._got("payment_requested", envelope)

    @event_handler("orders", "order_paid")
    def on_order_paid(self, envelope):
        self._got("order_paid", envelope)

    @event_handler("orders", "order_confirmed")
    def on_order_confirmed(self, envelope):
        self._got("order_confirmed", envelope)

    @event_handler("orders", "order_rejected")
    def on_order_rejected(self, envelope):
        self._got("order_rejected", envelope)

    @event_handler("orders", "order_payment_failed")
    def on_order_payment_failed(self, envelope):
        self._got("order_payment_failed", envelope)

    @event_handler("orders", "order_cancelled")
    def on_order_cancelled(self, envelope):
        self._got("order_cancelled", envelope)

    @event_handler("orders", "order_expired")
    def on_order_expired(self, envelope):
        self._got("order_expired", envelope)


def seen(order_id, name):
    return [
        envelope
        for event, envelope in list(OrdersListener.received)
        if event == name and envelope["data"]["order_id"] == order_id
    ]


def wait_event(order_id, name):
    """The one ``orders.<name>`` envelope about ``order_id``, checked against its contract."""
    (envelope,) = wait_until(lambda: seen(order_id, name), what=f"orders.{name} of {order_id}")
    assert envelope["type"] == f"orders.{name}"
    assert envelope["version"] == EVENTS[name]["version"]
    validate(EVENTS[name]["payload"], envelope["data"])
    return envelope


# --- containers --------------------------------------------------------------------


@pytest.fixture
def catalog(start_service):
    return start_service(CatalogService)


@pytest.fixture
def listener(container_factory, service_config):
    container = container_factory(OrdersListener, service_config(OrdersListener.name))
    container.start()
    return container


@pytest.fixture
def start_orders(container_factory, service_config, catalog, listener):
    """``start_orders(saga_timeout=1, ...)``: an orders container with these settings."""

    def start(max_workers=None, **settings):
        config = copy.deepcopy(service_config("orders"))
        config["AGORA"]["services"]["orders"].update(settings)
        if max_workers is not None:
            config["max_workers"] = max_workers
        container = container_factory(OrdersService, config)
        container.start()
        return container

    return start


@pytest.fixture
def orders(start_orders):
    return start_orders()


@pytest.fixture
def amqp(service_config):
    return {"AMQP_URI": service_config("tests")["AMQP_URI"], "SERIALIZER": "json"}


@pytest.fixture
def publish(publish_event):
    """``publish("inventory", "stock_reserved", data)``: an envelope as that service sends it."""
    return publish_event


# --- helpers -----------------------------------------------------------------------


def new_user():
    return str(uuid.uuid4())


def make_product(catalog, amount=1299, currency="EUR", **extra):
    payload = {
        "sku": f"ORD-{uuid.uuid4().hex[:10].upper()}",
        "name": "Mug",
        "price": {"amount": amount, "currency": currency},
        **extra,
    }
    return call(catalog, "create_product", payload)


def order_payload(*products, quantity=2, token="tok_visa"):
    return {
        "items": [{"product_id": p["id"], "quantity": quantity} for p in products],
        "payment": {"token": token},
    }


def place(orders, catalog, user=None, key=None, quantity=2):
    product = make_product(catalog)
    result = call(
        orders,
        "create_order",
        user or new_user(),
        order_payload(product, quantity=quantity),
        key or uuid.uuid4().hex,
    )
    return result["order"]


def status_of(orders, order_id):
    return call(orders, "get_order", order_id)["status"]


def wait_status(orders, order_id, status):
    wait_until(lambda: status_of(orders, order_id) == status, what=f"{order_id} to be {status}")
    return call(orders, "get_order", order_id)


def statuses(order):
    return [entry["status"] for entry in order["history"]]


# --- create ------------------------------------------------------------------------


def test_create_prices_the_order_from_the_catalog(orders, catalog, orders_db):
    mug = make_product(catalog, amount=1299)
    pen = make_product(catalog, amount=250)
    user = new_user()
    payload = {
        "items": [
            {"product_id": mug["id"], "quantity": 2},
            {"product_id": pen["id"], "quantity": 3},
        ],
        "payment": {"token": "tok_visa"},
    }
    result = call(orders, "create_order", user, payload, "key-1")
    validate(CREATE_RESULT, result)
    order = result["order"]
    assert result["created"] is True
    assert order["user_id"] == user and order["status"] == "pending"
    assert [(i["sku"], i["quantity"], i["line_total"]["amount"]) for i in order["items"]] == [
        (mug["sku"], 2, 2598),
        (pen["sku"], 3, 750),
    ]
    assert order["total"] == {"amount": 3348, "currency": "EUR"}
    assert order["payment_id"] is None and order["reason"] is None
    assert statuses(order) == ["pending"]
    assert order["deadline_at"] > order["created_at"]
    assert "tok_visa" not in str(order)
    ((deadline_seconds,),) = sql(
        orders_db,
        "SELECT extract(epoch FROM deadline_at - created_at) FROM orders WHERE id = :id",
        id=order["id"],
    )
    assert float(deadline_seconds) == 300  # services.orders.saga_timeout
    assert call(orders, "get_order", order["id"], user) == order


def test_same_key_and_body_returns_the_first_order(orders, catalog):
    product = make_product(catalog)
    user = new_user()
    first = call(orders, "create_order", user, order_payload(product), "same-key")
    again = call(orders, "create_order", user, order_payload(product), "same-key")
    assert first["created"] is True and again["created"] is False
    assert again["order"] == first["order"]
    assert len(call(orders, "list_orders", user)["items"]) == 1


def test_same_key_with_another_body_is_a_conflict(orders, catalog):
    product = make_product(catalog)
    user = new_user()
    call(orders, "create_order", user, order_payload(product, quantity=1), "k")
    for other in (
        order_payload(product, quantity=2),
        order_payload(product, quantity=1, token="tok_other"),
    ):
        with pytest.raises(Conflict) as info:
            call(orders, "create_order", user, other, "k")
        assert str(info.value) == "idempotency key reused with a different request"


def test_keys_belong_to_one_user(orders, catalog):
    product = make_product(catalog)
    one = call(orders, "create_order", new_user(), order_payload(product), "shared")
    two = call(orders, "create_order", new_user(), order_payload(product), "shared")
    assert one["created"] and two["created"]
    assert one["order"]["id"] != two["order"]["id"]


def test_concurrent_requests_with_one_key_make_one_order(orders, catalog, amqp):
    """The race the first look-up cannot see: the unique constraint decides."""
    product = make_product(catalog)
    user = new_user()
    payload = order_payload(product)
    with ClusterRpcProxy(amqp) as rpc:
        replies = [rpc.orders.create_order.call_async(user, payload, "race") for _ in range(6)]
        results = [reply.result() for reply in replies]
    assert len({result["order"]["id"] for result in results}) == 1
    assert sorted(result["created"] for result in results) == [False] * 5 + [True]
    assert len(call(orders, "list_orders", user)["items"]) == 1


def test_concurrent_requests_with_one_key_and_other_bodies_conflict(orders, catalog, amqp):
    product = make_product(catalog)
    user = new_user()
    with ClusterRpcProxy(amqp) as rpc:
        replies = [
            rpc.orders.create_order.call_async(user, order_payload(product, quantity=q), "race2")
            for q in (1, 2, 3)
        ]
        outcomes = []
        for reply in replies:
            try:
                outcomes.append(reply.result()["created"])
            except Conflict:
                outcomes.append("conflict")
    assert sorted(outcomes, key=str) == [True, "conflict", "conflict"]


@pytest.mark.parametrize(
    "payload, fields",
    [
        ({"items": [], "payment": {"token": "t"}}, {"items"}),
        (
            {"items": [{"product_id": "x", "quantity": 0}]},
            {"items.0.product_id", "items.0.quantity", "payment"},
        ),
        (
            {"items": [{"product_id": str(uuid.uuid4()), "quantity": 1}], "payment": {"token": ""}},
            {"payment.token"},
        ),
        (None, {"body"}),
    ],
)
def test_bad_payloads_name_their_fields(orders, payload, fields):
    with pytest.raises(ValidationError) as info:
        call(orders, "create_order", new_user(), payload, "k")
    assert set(info.value.details) == fields


@pytest.mark.parametrize(
    "user, key, fields",
    [
        ("me", "k", {"user_id"}),
        (None, "k", {"user_id"}),
        (str(uuid.uuid4()), "", {"idempotency_key"}),
        (str(uuid.uuid4()), "x" * 256, {"idempotency_key"}),
        (str(uuid.uuid4()), "caf\u00e9", {"idempotency_key"}),
        (str(uuid.uuid4()), None, {"idempotency_key"}),
    ],
)
def test_bad_user_or_key(orders, catalog, user, key, fields):
    product = make_product(catalog)
    with pytest.raises(ValidationError) as info:
        call(orders, "create_order", user, order_payload(product), key)
    assert set(info.value.details) == fields


def test_unknown_and_inactive_products_name_their_items(orders, catalog):
    active = make_product(catalog)
    inactive = make_product(catalog, active=False)
    payload = {
        "items": [
            {"product_id": active["id"], "quantity": 1},
            {"product_id": str(uuid.uuid4()), "quantity": 1},
            {"product_id": inactive["id"], "quantity": 1},
        ],
        "payment": {"token": "tok_visa"},
    }
    with pytest.raises(ValidationError) as info:
        call(orders, "create_order", new_user(), payload, "k")
    assert info.value.details == {
        "items.1.product_id": "is not a known product",
        "items.2.product_id": "is not available",
    }


def test_lines_in_two_currencies_are_refused(orders, catalog):
    payload = order_payload(make_product(catalog), make_product(catalog, currency="USD"))
    with pytest.raises(ValidationError) as info:
        call(orders, "create_order", new_user(), payload, "k")
    assert info.value.details == {"items": "must all be priced in one currency, found EUR, USD"}


def test_configured_limits_and_duplicates(orders, catalog):
    product = make_product(catalog)
    too_many = {
        "items": [{"product_id": str(uuid.uuid4()), "quantity": 1} for _ in range(51)],
        "payment": {"token": "t"},
    }
    with pytest.raises(ValidationError) as info:
        call(orders, "create_order", new_user(), too_many, "k")
    assert info.value.details == {"items": "must have at most 50 lines"}
    with pytest.raises(ValidationError) as info:
        call(orders, "create_order", new_user(), order_payload(product, quantity=1001), "k")
    assert info.value.details == {"items.0.quantity": "must be <= 1000"}
    with pytest.raises(ValidationError) as info:
        call(orders, "create_order", new_user(), order_payload(product, product), "k")
    assert list(info.value.details) == ["items.1.product_id"]


def test_a_refused_order_leaves_nothing_behind(orders, catalog):
    user = new_user()
    with pytest.raises(ValidationError):
        call(orders, "create_order", user, order_payload({"id": str(uuid.uuid4())}), "k")
    assert call(orders, "list_orders", user)["items"] == []
    # The key is still free: the same key with a valid body places the order.
    assert call(orders, "create_order", user, order_payload(make_product(catalog)), "k")["created"]


def test_errors_cross_rpc_intact(orders, catalog, amqp):
    with ClusterRpcProxy(amqp) as rpc:
        with pytest.raises(ValidationError) as info:
            rpc.orders.create_order(new_user(), {"items": []}, "k")
        assert info.value.details["payment"] == "is required"
        with pytest.raises(NotFound):
            rpc.orders.get_order(str(uuid.uuid4()), None)


# --- get and list ------------------------------------------------------------------


def test_get_is_for_the_owner_or_anyone_without_a_user(orders, catalog):
    user = new_user()
    order = place(orders, catalog, user)
    validate(ORDER, call(orders, "get_order", order["id"], user))
    assert call(orders, "get_order", order["id"], None) == order
    with pytest.raises(NotFound):
        call(orders, "get_order", order["id"], new_user())


@pytest.mark.parametrize("order_id", [None, "", "nope", 5, str(uuid.uuid4())])
def test_get_unknown_or_malformed_is_not_found(orders, order_id):
    with pytest.raises(NotFound):
        call(orders, "get_order", order_id)


def test_get_with_a_malformed_user_is_a_validation_error(orders):
    with pytest.raises(ValidationError) as info:
        call(orders, "get_order", str(uuid.uuid4()), "me")
    assert list(info.value.details) == ["user_id"]


def test_list_pages_newest_first(orders, catalog):
    user = new_user()
    placed = [place(orders, catalog, user) for _ in range(5)]
    place(orders, catalog)  # someone else's
    first = call(orders, "list_orders", user, 2)
    validate(ORDER_PAGE, first)
    second = call(orders, "list_orders", user, 2, first["next_cursor"])
    third = call(orders, "list_orders", user, 2, second["next_cursor"])
    assert third["next_cursor"] is None
    listed = [o["id"] for page in (first, second, third) for o in page["items"]]
    assert listed == [o["id"] for o in reversed(placed)]
    assert call(orders, "list_orders", user)["items"][0] == call(orders, "get_order", listed[0])


def test_list_filters_by_status(orders, catalog):
    user = new_user()
    kept = place(orders, catalog, user)
    cancelled = place(orders, catalog, user)
    call(orders, "cancel_order", cancelled["id"], user)
    page = call(orders, "list_orders", user, status="cancelled")
    assert [o["id"] for o in page["items"]] == [cancelled["id"]]
    page = call(orders, "list_orders", user, status="pending")
    assert [o["id"] for o in page["items"]] == [kept["id"]]
    assert call(orders, "list_orders", user, status="confirmed")["items"] == []


@pytest.mark.parametrize(
    "arguments, field",
    [
        (("me",), "user_id"),
        ((str(uuid.uuid4()), 0), "limit"),
        ((str(uuid.uuid4()), 101), "limit"),
        ((str(uuid.uuid4()), "5"), "limit"),
        ((str(uuid.uuid4()), 20, "garbage"), "cursor"),
        ((str(uuid.uuid4()), 20, None, "shipped"), "status"),
    ],
)
def test_list_validates_its_arguments(orders, arguments, field):
    with pytest.raises(ValidationError) as info:
        call(orders, "list_orders", *arguments)
    assert list(info.value.details) == [field]


# --- cancel by the customer --------------------------------------------------------


def test_customer_cancels_a_pending_order(orders, catalog, orders_db):
    user = new_user()
    order = place(orders, catalog, user)
    with pytest.raises(NotFound):
        call(orders, "cancel_order", order["id"], new_user())
    cancelled = call(orders, "cancel_order", order["id"], user)
    validate(ORDER, cancelled)
    assert cancelled["status"] == "cancelled" and cancelled["reason"] == "customer"
    assert statuses(cancelled) == ["pending", "cancelled"]
    assert cancelled["history"][-1]["reason"] == "customer"
    # The token is not kept once the order is closed.
    assert sql(orders_db, "SELECT payment_token FROM orders WHERE id = :id", id=order["id"]) == [
        (None,)
    ]
    with pytest.raises(Conflict) as info:
        call(orders, "cancel_order", order["id"], user)
    assert info.value.details == {"status": "cancelled"}


def test_payment_token_of_unknown_or_malformed_orders(orders):
    with pytest.raises(NotFound):
        call(orders, "get_payment_token", str(uuid.uuid4()))
    with pytest.raises(ValidationError) as info:
        call(orders, "get_payment_token", "nope")
    assert list(info.value.details) == ["order_id"]


@pytest.mark.parametrize("order_id", ["nope", str(uuid.uuid4())])
def test_cancel_unknown_is_not_found(orders, order_id):
    with pytest.raises(NotFound):
        call(orders, "cancel_order", order_id, new_user())


def test_cancel_needs_a_user(orders, catalog):
    order = place(orders, catalog)
    with pytest.raises(ValidationError) as info:
        call(orders, "cancel_order", order["id"], None)
    assert list(info.value.details) == ["user_id"]
    assert status_of(orders, order["id"]) == "pending"


# --- the saga, driven by inventory and billing events -------------------------------


def reserved(publish, order):
    return publish(
        "inventory",
        "stock_reserved",
        {
            "order_id": order["id"],
            "reservation_id": str(uuid.uuid4()),
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "lines": [
                {"sku": i["sku"], "warehouse": "main", "quantity": i["quantity"]}
                for i in order["items"]
            ],
        },
    )


def paid(publish, order, payment_id):
    return publish(
        "billing",
        "payment_succeeded",
        {
            "order_id": order["id"],
            "payment_id": payment_id,
            "user_id": order["user_id"],
            "amount": order["total"],
        },
    )


def payment_failed(publish, order, payment_id):
    return publish(
        "billing",
        "payment_failed",
        {
            "order_id": order["id"],
            "payment_id": payment_id,
            "user_id": order["user_id"],
            "amount": order["total"],
            "code": "card_declined",
            "reason": "the card was declined",
            "attempts": 1,
        },
    )


def inventory(publish, name, order, **data):
    return publish("inventory", name, {"order_id": order["id"], **data})


def test_happy_path_pending_reserved_paid_confirmed(orders, catalog, publish, orders_db):
    user = new_user()
    order = place(orders, catalog, user)
    created = wait_event(order["id"], "order_created")
    assert created["data"]["items"] == order["items"]
    assert created["data"]["total"] == order["total"]
    assert created["data"]["deadline_at"] == order["deadline_at"]

    with pytest.raises(Conflict) as info:
        call(orders, "get_payment_token", order["id"])  # pending: not for billing yet
    assert info.value.details == {"status": "pending"}

    reserved(publish, order)
    requested = wait_event(order["id"], "payment_requested")
    # The token never travels in an event: billing asks orders for it.
    assert "payment_token" not in requested["data"] and "tok_visa" not in str(requested)
    assert requested["data"]["amount"] == order["total"]
    assert requested["data"]["items"] == order["items"]
    assert wait_status(orders, order["id"], "reserved")["payment_id"] is None
    # Asked again (a redelivered payment request), it is still there.
    for _ in range(2):
        assert call(orders, "get_payment_token", order["id"]) == {"payment_token": "tok_visa"}

    payment_id = str(uuid.uuid4())
    paid(publish, order, payment_id)
    assert wait_event(order["id"], "order_paid")["data"]["payment_id"] == payment_id
    assert wait_status(orders, order["id"], "paid")["payment_id"] == payment_id
    # Billing answered: the order forgets the token.
    assert sql(orders_db, "SELECT payment_token FROM orders WHERE id = :id", id=order["id"]) == [
        (None,)
    ]
    with pytest.raises(Conflict) as info:
        call(orders, "get_payment_token", order["id"])
    assert info.value.details == {"status": "paid"}
    # No stored event holds it either (outbox rows are kept for days).
    assert sql(
        orders_db,
        "SELECT count(*) FROM outbox_events WHERE envelope::text LIKE '%tok_visa%'",
    ) == [(0,)]

    inventory(publish, "reservation_committed", order, reservation_id=str(uuid.uuid4()))
    confirmed = wait_event(order["id"], "order_confirmed")["data"]
    assert confirmed == {
        "order_id": order["id"],
        "user_id": user,
        "items": order["items"],
        "total": order["total"],
        "payment_id": payment_id,
    }
    final = wait_status(orders, order["id"], "confirmed")
    validate(ORDER, final)
    assert statuses(final) == ["pending", "reserved", "paid", "confirmed"]

    # Within its cancellation window (30 minutes by default) a customer may still
    # cancel a confirmed order: stock is restocked, the payment refunded.
    cancelled = call(orders, "cancel_order", order["id"], user)
    assert cancelled["status"] == "cancelled"
    event = wait_event(order["id"], "order_cancelled")["data"]
    assert event["reason"] == "customer" and event["previous_status"] == "confirmed"


def confirm(orders, publish, order):
    reserved(publish, order)
    wait_status(orders, order["id"], "reserved")
    paid(publish, order, str(uuid.uuid4()))
    wait_status(orders, order["id"], "paid")
    inventory(publish, "reservation_committed", order, reservation_id=str(uuid.uuid4()))
    return wait_status(orders, order["id"], "confirmed")


def test_after_the_cancellation_window_a_confirmed_order_stays(start_orders, catalog, publish):
    """cancellation_window 0: the window closed at the confirmation. The customer
    gets CancellationWindowClosed (409 cancellation_window_closed at the gateway);
    nothing is cancelled or refunded."""
    orders = start_orders(cancellation_window=0)
    user = new_user()
    order = place(orders, catalog, user)
    confirmed = confirm(orders, publish, order)
    with pytest.raises(CancellationWindowClosed) as info:
        call(orders, "cancel_order", order["id"], user)
    assert info.value.code == "cancellation_window_closed"
    assert info.value.details["status"] == "confirmed"
    assert info.value.details["closed_at"] == confirmed["history"][-1]["at"]
    after = call(orders, "get_order", order["id"])
    assert after["status"] == "confirmed" and after["history"] == confirmed["history"]
    assert seen(order["id"], "order_cancelled") == []

    # The window is about confirmed orders only: one still pending is cancelled.
    pending = place(orders, catalog, user)
    assert call(orders, "cancel_order", pending["id"], user)["status"] == "cancelled"


def test_reservation_rejected(orders, catalog, publish):
    order = place(orders, catalog)
    shortages = [{"sku": order["items"][0]["sku"], "requested": 2, "available": 1}]
    inventory(publish, "reservation_rejected", order, shortages=shortages)
    event = wait_event(order["id"], "order_rejected")["data"]
    assert event["shortages"] == shortages and event["reason"] == "out_of_stock"
    final = wait_status(orders, order["id"], "rejected")
    assert final["reason"] == "out_of_stock"
    # The order itself says which line was short and what was available.
    validate(ORDER, final)
    line = order["items"][0]
    assert final["shortages"] == [
        {"sku": line["sku"], "name": line["name"], "requested": 2, "available": 1}
    ]
    assert final["history"][-1]["reason"] == "out_of_stock"
    assert final["history"][-1]["message"] == "Not enough stock: the order could not be placed"
    assert statuses(final) == ["pending", "rejected"]
    # Operators (ops:read) read the note with the shortages.
    noted = call(orders, "get_order", order["id"], None, True)
    validate(ORDER, noted)
    assert noted["history"] == final["history"]
    assert (
        noted["operator_history"][-1]["note"]
        == f"out_of_stock: {line['sku']}: 2 requested, 1 available"
    )


def test_payment_failed_then_released_is_cancelled(orders, catalog, publish):
    order = place(orders, catalog)
    reserved(publish, order)
    wait_status(orders, order["id"], "reserved")
    payment_id = str(uuid.uuid4())
    payment_failed(publish, order, payment_id)
    failed = wait_event(order["id"], "order_payment_failed")["data"]
    assert failed["payment_id"] == payment_id and failed["reason"] == "the card was declined"
    assert wait_status(orders, order["id"], "payment_failed")["reason"] == "card_declined"

    inventory(publish, "reservation_released", order, reservation_id=None, reason="payment")
    event = wait_event(order["id"], "order_cancelled")["data"]
    assert event["reason"] == "payment_failed" and event["previous_status"] == "payment_failed"
    final = wait_status(orders, order["id"], "cancelled")
    assert statuses(final) == ["pending", "reserved", "payment_failed", "cancelled"]
    assert final["reason"] == "payment_failed" and final["payment_id"] == payment_id


def test_commit_failed_cancels_a_paid_order(orders, catalog, publish):
    order = place(orders, catalog)
    reserved(publish, order)
    wait_status(orders, order["id"], "reserved")
    paid(publish, order, str(uuid.uuid4()))
    wait_status(orders, order["id"], "paid")
    inventory(publish, "reservation_commit_failed", order, reason="reservation expired")
    event = wait_event(order["id"], "order_cancelled")["data"]
    assert event["reason"] == "commit_failed" and event["previous_status"] == "paid"
    assert wait_status(orders, order["id"], "cancelled")["reason"] == "commit_failed"


def test_reservation_expired_expires_a_reserved_order(orders, catalog, publish):
    order = place(orders, catalog)
    reserved(publish, order)
    wait_status(orders, order["id"], "reserved")
    inventory(publish, "reservation_expired", order, reservation_id=str(uuid.uuid4()))
    assert wait_event(order["id"], "order_expired")["data"]["previous_status"] == "reserved"
    assert wait_status(orders, order["id"], "expired")["reason"] == "reservation_expired"


def test_customer_cancels_a_reserved_order(orders, catalog, publish):
    user = new_user()
    order = place(orders, catalog, user)
    reserved(publish, order)
    wait_status(orders, order["id"], "reserved")
    call(orders, "cancel_order", order["id"], user)
    event = wait_event(order["id"], "order_cancelled")["data"]
    assert event == {
        "order_id": order["id"],
        "user_id": user,
        "reason": "customer",
        "previous_status": "reserved",
    }
    # Billing may still answer the payment request: the cancelled order ignores it.
    paid(publish, order, str(uuid.uuid4()))
    final = wait_until(
        lambda: (
            (o := call(orders, "get_order", order["id"], None, True))["operator_history"][-1][
                "status"
            ]
            == "cancelled"
            and "ignored" in (o["operator_history"][-1]["note"] or "")
            and o
        ),
        what="the late payment to be noted",
    )
    assert final["status"] == "cancelled" and final["payment_id"] is None
    # The customer reads status changes only, in words.
    assert [e["message"] for e in final["history"]] == [
        "Order placed",
        "Stock reserved",
        "Cancelled: you cancelled the order",
    ]
    assert final["cancellation_reason"] == "You cancelled the order"
    assert "operator_history" not in call(orders, "get_order", order["id"])
    assert seen(order["id"], "order_paid") == []


# The sweep runs when a deadline passes, not only at its next poll (sweep_interval).
@pytest.mark.parametrize("sweep_interval", [0.2, 3600.0], ids=["polling", "when-due"])
def test_the_sweep_expires_an_order_past_its_deadline(start_orders, catalog, sweep_interval):
    orders = start_orders(saga_timeout=1, sweep_interval=sweep_interval)
    order = place(orders, catalog)
    event = wait_event(order["id"], "order_expired")["data"]
    assert event["previous_status"] == "pending"
    final = wait_status(orders, order["id"], "expired")
    assert final["reason"] == "deadline"
    assert statuses(final) == ["pending", "expired"]


def test_the_sweep_cancels_a_failed_payment_past_its_deadline(
    start_orders, catalog, publish, orders_db
):
    orders = start_orders(sweep_interval=0.2)
    order = place(orders, catalog)
    reserved(publish, order)
    wait_status(orders, order["id"], "reserved")
    payment_failed(publish, order, str(uuid.uuid4()))
    wait_status(orders, order["id"], "payment_failed")
    # Inventory's release never came; move the deadline into the past.
    sql(
        orders_db,
        "UPDATE orders SET deadline_at = now() - interval '1 second' WHERE id = :id",
        id=order["id"],
    )
    event = wait_event(order["id"], "order_cancelled")["data"]
    assert event["reason"] == "payment_failed" and event["previous_status"] == "payment_failed"
    assert wait_status(orders, order["id"], "cancelled")["reason"] == "payment_failed"


def test_a_refund_is_noted_in_the_history_once(orders, catalog, publish):
    user = new_user()
    order = place(orders, catalog, user)
    confirmed = confirm(orders, publish, order)
    envelope = publish(
        "billing",
        "refund_issued",
        {
            "order_id": order["id"],
            "payment_id": confirmed["payment_id"],
            "user_id": user,
            "refund_id": str(uuid.uuid4()),
            "amount": {"amount": 500, "currency": "EUR"},
            "reason": "damaged in transit",
            "payment_status": "partially_refunded",
        },
    )
    publish("billing", "refund_issued", envelope=envelope)  # redelivered: no second entry
    noted = wait_until(
        lambda: (
            (o := call(orders, "get_order", order["id"], None, True))["history"][-1]["reason"]
            == "partially_refunded"
            and o
        ),
        what="the refund in the history",
    )
    validate(ORDER, noted)
    assert noted["status"] == "confirmed"
    assert [e["message"] for e in noted["history"]][-2:] == ["Order confirmed", "Partly refunded"]
    assert noted["operator_history"][-1]["note"] == (
        "partially_refunded: 500 EUR (damaged in transit)"
    )
    assert noted["operator_history"][-1]["event_id"] == envelope["event_id"]
    # A redelivery has no second effect (the inbox), even after another event.
    inventory(publish, "reservation_committed", order, reservation_id=str(uuid.uuid4()))
    wait_until(
        lambda: (
            len(call(orders, "get_order", order["id"], None, True)["operator_history"])
            == len(noted["operator_history"]) + 1
        ),
        what="the ignored commit noted",
    )
    after = call(orders, "get_order", order["id"])
    assert [e["reason"] for e in after["history"]].count("partially_refunded") == 1


def test_out_of_order_events_are_noted_and_ignored(orders, catalog, publish):
    order = place(orders, catalog)
    # Payment before the reservation, and a commit for an unpaid order: neither applies.
    paid(publish, order, str(uuid.uuid4()))
    inventory(publish, "reservation_committed", order, reservation_id=str(uuid.uuid4()))
    noted = wait_until(
        lambda: (
            len((o := call(orders, "get_order", order["id"], None, True))["operator_history"]) == 3
            and o
        ),
        what="two ignored events in the history",
    )
    assert noted["status"] == "pending" and noted["payment_id"] is None
    ignored = sorted(entry["note"] for entry in noted["operator_history"][1:])
    assert ignored == [
        "ignored billing.payment_succeeded in status pending",
        "ignored inventory.reservation_committed in status pending",
    ]
    assert {entry["status"] for entry in noted["operator_history"]} == {"pending"}
    assert all(entry["event_id"] for entry in noted["operator_history"][1:])
    # Not for the customer: the order was placed, nothing else happened to it.
    assert [entry["message"] for entry in noted["history"]] == ["Order placed"]
    # The saga carries on from where the order really is.
    reserved(publish, order)
    assert wait_status(orders, order["id"], "reserved")
    assert seen(order["id"], "order_paid") == [] and seen(order["id"], "order_confirmed") == []


def test_duplicate_events_have_one_effect(start_orders, catalog, publish, orders_db):
    # One worker: the orders queues are consumed one message at a time, in order.
    orders = start_orders(max_workers=1)
    order = place(orders, catalog)
    first = reserved(publish, order)
    wait_status(orders, order["id"], "reserved")
    publish("inventory", "stock_reserved", envelope=first)  # redelivered as is
    reserved(publish, order)  # another reservation event for the same order: out of date
    noted = wait_until(
        lambda: (
            len((o := call(orders, "get_order", order["id"], None, True))["operator_history"]) == 3
            and o
        ),
        what="the stale reservation to be noted",
    )
    assert [e["status"] for e in noted["operator_history"]] == ["pending", "reserved", "reserved"]
    assert (
        noted["operator_history"][2]["note"]
        == "ignored inventory.stock_reserved in status reserved"
    )
    assert statuses(noted) == ["pending", "reserved"]
    (requests,) = sql(
        orders_db,
        "SELECT count(*) FROM order_history WHERE order_id = :id AND event_id = :event",
        id=order["id"],
        event=first["event_id"],
    )
    assert requests == (1,)
    # One payment request was written to the outbox, and it was published.
    ((outboxed,),) = sql(
        orders_db,
        "SELECT count(*) FROM outbox_events WHERE event_type = 'payment_requested' "
        "AND envelope -> 'data' ->> 'order_id' = :id",
        id=order["id"],
    )
    assert outboxed == 1
    wait_event(order["id"], "payment_requested")


def test_events_for_unknown_orders_are_dropped(orders, catalog, publish):
    ghost = {"id": str(uuid.uuid4()), "user_id": new_user(), "total": {}, "items": []}
    reserved(publish, ghost)
    publish("inventory", "stock_reserved", {"order_id": "not-a-uuid"})
    # The handler acknowledges them and goes on with real orders.
    order = place(orders, catalog)
    reserved(publish, order)
    wait_status(orders, order["id"], "reserved")
    with pytest.raises(NotFound):
        call(orders, "get_order", ghost["id"])
