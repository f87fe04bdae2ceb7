"""The commerce routes of the gateway (orders, inventory, payments, notifications),
checked without any broker.

The app is the real one (create_app); access tokens are real RS256 JWTs checked
by the real TokenVerifier against a key made here (the auth service's JWKS fetch
is replaced, as in test_token_verifier). Validation tests install a stand-in RPC
client that fails on any call, which proves each refusal happens before the
gateway calls out. The tests of what the gateway makes of the services' answers
(202 and replays, the aggregated order view, payment ownership) give canned
answers shaped as the RPC results of the commerce contract: the services' own behaviour is
tested in their integration tests and end to end.
"""

import copy
import json
import threading
import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from gateway.api.orders import ORDER_VIEW
from gateway.app import create_app
from gateway.auth.tokens import KeyCache, TokenVerifier
from gateway.openapi import build_document
from gateway.rpc import ServiceUnavailable, UpstreamError
from services.billing import schemas as billing
from services.chassis.errors import Conflict, NotFound
from services.chassis.schemas import validate
from services.inventory import schemas as inventory
from services.notifications import schemas as notifications
from services.orders import schemas as orders

pytestmark = pytest.mark.unit

KEY = RSAKey.generate_key(2048, parameters={"kid": "commerce-test"})

USER_ID = str(uuid.uuid4())
OTHER_USER_ID = str(uuid.uuid4())
ORDER_ID = str(uuid.uuid4())
PAYMENT_ID = str(uuid.uuid4())
DISPUTE_ID = str(uuid.uuid4())
PRODUCT_ID = str(uuid.uuid4())
MONEY = {"amount": 1998, "currency": "EUR"}
NOW = "2026-01-02T03:04:05.000000Z"
LINE = {
    "product_id": PRODUCT_ID,
    "sku": "MUG-1",
    "name": "Mug",
    "quantity": 2,
    "unit_price": {"amount": 999, "currency": "EUR"},
    "line_total": MONEY,
}
ORDER = {
    "id": ORDER_ID,
    "user_id": USER_ID,
    "status": "pending",
    "items": [LINE],
    "total": MONEY,
    "payment_id": None,
    "reason": None,
    "shortages": [],
    "created_at": NOW,
    "updated_at": NOW,
    "deadline_at": NOW,
    "cancellation_reason": None,
    "history": [{"status": "pending", "at": NOW, "reason": None, "message": "Order placed"}],
}
RESERVATION = {
    "reservation_id": str(uuid.uuid4()),
    "order_id": ORDER_ID,
    "status": "active",
    "expires_at": NOW,
    "lines": [{"sku": "MUG-1", "warehouse": "main", "quantity": 2}],
}
PAYMENT = {
    "id": PAYMENT_ID,
    "order_id": ORDER_ID,
    "user_id": USER_ID,
    "amount": MONEY,
    "status": "succeeded",
    "refunded": {"amount": 0, "currency": "EUR"},
    "failure": None,
    "attempts": 1,
    "created_at": NOW,
    "updated_at": NOW,
    "refunds": [],
    "disputes": [],
    "receipt": {
        "id": str(uuid.uuid4()),
        "number": "R-2026-000001",
        "issued_at": NOW,
        "amount": MONEY,
        "items": [LINE],
    },
}
STOCK = {
    "sku": "MUG-1",
    "warehouses": [{"warehouse": "main", "on_hand": 50, "reserved": 2, "available": 48}],
    "total": {"on_hand": 50, "reserved": 2, "available": 48},
}
ORDER_BODY = {"items": [{"product_id": PRODUCT_ID, "quantity": 2}], "payment": {"token": "tok"}}

CUSTOMER = "profile orders:read orders:write"
ADMIN = f"{CUSTOMER} catalog:write inventory:write billing:admin users:admin"

# Every commerce route: (method, path as documented, scopes; None = public).
ROUTES = {
    ("POST", "/v1/orders"): ["orders:write"],
    ("GET", "/v1/orders"): ["orders:read"],
    ("GET", "/v1/orders/{order_id}"): ["orders:read"],
    ("POST", "/v1/orders/{order_id}/cancel"): ["orders:write"],
    ("GET", "/v1/inventory/{sku}"): None,
    ("PUT", "/v1/inventory/{sku}"): ["inventory:write"],
    ("GET", "/v1/payments"): ["billing:admin"],
    ("GET", "/v1/payments/{payment_id}"): ["orders:read"],
    ("POST", "/v1/payments/{payment_id}/refunds"): ["billing:admin"],
    ("POST", "/v1/payments/{payment_id}/disputes"): ["billing:admin"],
    ("POST", "/v1/payments/{payment_id}/disputes/{dispute_id}/resolution"): ["billing:admin"],
    ("GET", "/v1/notifications"): ["profile"],
}


class StubRpc:
    """Stands in for gateway.rpc.RpcClient: canned answers per (service, method).

    An answer is a value, an exception to raise, or a callable taking the call's
    arguments. A call without an answer fails the request (500). ``events``
    records when each call was made and when its answer was awaited."""

    def __init__(self, answers=None):
        self.answers = dict(answers or {})
        self.calls = []
        self.events = []
        self._lock = threading.Lock()

    def call(self, service, method, *args, **kwargs):
        return self.call_async(service, method, *args, **kwargs).result()

    def call_async(self, service, method, *args, **kwargs):
        with self._lock:
            self.calls.append((service, method, args, kwargs))
            self.events.append(("call", service))
        return StubPending(self, service, method, args, kwargs)

    def answer(self, service, method, args, kwargs):
        with self._lock:
            self.events.append(("result", service))
        if (service, method) not in self.answers:
            raise AssertionError(f"unexpected RPC {service}.{method}")
        answer = self.answers[(service, method)]
        if callable(answer) and not isinstance(answer, type):
            answer = answer(*args, **kwargs)
        if isinstance(answer, BaseException):
            raise answer
        return copy.deepcopy(answer)


class StubPending:
    def __init__(self, stub, service, method, args, kwargs):
        self.stub, self.call = stub, (service, method, args, kwargs)

    def result(self):
        return self.stub.answer(*self.call)


@pytest.fixture(scope="module")
def app(config):
    config = copy.deepcopy(config)
    # Nothing listens here: a test that reached out would fail, not hang.
    config["amqp"]["uri"] = "amqp://guest:guest@127.0.0.1:9/none"
    config["gateway"]["rate_limits"]["enabled"] = False
    config["tracing"]["sample_rate"] = 0.0
    app = create_app(config)
    jwks = {"keys": [{**KEY.as_dict(private=False), "kid": KEY.kid, "use": "sig", "alg": "RS256"}]}
    keys = KeyCache(lambda: jwks, ttl=300, min_refresh_interval=5)
    app.extensions["agora.tokens"] = TokenVerifier(keys, config["auth"])
    return app


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture
def stub(app):
    """A stand-in RPC client with no answers: any call fails the request."""
    real = app.extensions["agora.rpc"]
    stub = StubRpc()
    app.extensions["agora.rpc"] = stub
    yield stub
    app.extensions["agora.rpc"] = real


def token(app, scope=CUSTOMER, user_id=USER_ID, client_id="agora-web"):
    """A signed access token; ``user_id=None`` is a client acting for itself."""
    settings = app.config["AGORA"]["auth"]
    now = int(time.time())
    claims = {
        "iss": settings["issuer"],
        "aud": settings["audience"],
        "sub": user_id or client_id,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "scope": scope,
        "client_id": client_id,
    }
    if user_id is not None:
        claims["sid"] = str(uuid.uuid4())
    header = {"alg": "RS256", "kid": KEY.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, KEY)


def auth(app, **kwargs):
    return {"Authorization": f"Bearer {token(app, **kwargs)}"}


def error_of(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


# --- the OpenAPI document --------------------------------------------------------


@pytest.fixture(scope="module")
def document(app):
    return build_document(app)


def test_every_commerce_route_is_documented_with_its_scopes(document):
    for (method, path), scopes in ROUTES.items():
        operation = document["paths"][path][method.lower()]
        assert operation["summary"] and operation["tags"], (method, path)
        responses = operation["responses"]
        if scopes is None:
            assert operation["security"][0] == {}, (method, path)
            assert "403" not in responses
        else:
            assert operation["security"] == [{"oauth2": scopes}, {"bearerAuth": scopes}]
            assert {"401", "403"} <= set(responses), (method, path)
        assert {"502", "503"} <= set(responses), (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        expected_group = "read" if method == "GET" else "write"
        assert operation["x-rate-limit-group"] == expected_group, (method, path)
    documented = {
        (method.upper(), path)
        for path, ops in document["paths"].items()
        for method in ops
        if path.startswith(("/v1/orders", "/v1/inventory", "/v1/payments", "/v1/notifications"))
    }
    assert documented == set(ROUTES)


def test_documented_statuses_and_headers(document):
    def op(method, path):
        return document["paths"][path][method]

    create = op("post", "/v1/orders")["responses"]
    assert {"202", "400", "409", "415"} <= set(create)
    assert create["202"]["headers"]["Location"]["required"] is True
    assert create["202"]["headers"]["Idempotent-Replayed"]["required"] is False
    assert "Idempotency-Key" in op("post", "/v1/orders")["description"]
    view = op("get", "/v1/orders/{order_id}")["responses"]["200"]
    schema = view["content"]["application/json"]["schema"]
    assert {"id", "status", "items", "total", "reservation", "payment"} <= set(schema["required"])
    assert "Agora-Degraded" in view["headers"]
    assert "409" in op("post", "/v1/orders/{order_id}/cancel")["responses"]
    for path in ("/v1/payments/{payment_id}/refunds", "/v1/payments/{payment_id}/disputes"):
        assert op("post", path)["responses"]["201"]["headers"]["Location"]["required"] is True
    assert {p["name"] for p in op("get", "/v1/orders")["parameters"]} == {
        "limit",
        "cursor",
        "status",
    }
    assert {p["name"] for p in op("get", "/v1/notifications")["parameters"]} == {"limit", "cursor"}
    for ops in document["paths"].values():
        for operation in ops.values():
            for parameter in operation.get("parameters", ()):
                # UUIDs, except a dead letter's event_id (it may name a message
                # that is no event: body-<hash>) and an image's id (32 hex
                # digits of its content hash).
                name = parameter["name"]
                if parameter["in"] == "path" and name.endswith("_id") and name != "event_id":
                    prefix = "^[0-9a-f]{32}$" if name == "image_id" else "^[0-9a-f]{8}"
                    assert parameter["schema"]["pattern"].startswith(prefix)


def test_the_routes_use_the_services_own_contracts(app):
    def meta(endpoint):
        return app.view_functions[endpoint]._openapi

    assert meta("orders.create_order")["body"] is orders.ORDER_CREATE
    assert meta("orders.create_order")["responses"][202]["schema"] is orders.ORDER
    assert meta("orders.list_orders")["responses"][200] is orders.ORDER_PAGE
    assert meta("orders.cancel_order")["responses"][200] is orders.ORDER
    assert meta("inventory.get_stock")["responses"][200] is inventory.STOCK
    assert meta("inventory.set_stock")["body"] is inventory.STOCK_SET
    assert meta("payments.get_payment")["responses"][200] is billing.PAYMENT
    assert meta("payments.refund_payment")["body"] is billing.REFUND_REQUEST
    assert meta("payments.open_dispute")["body"] is billing.DISPUTE_REQUEST
    assert meta("payments.resolve_dispute")["body"] is billing.DISPUTE_RESOLUTION
    assert meta("notifications.list_notifications")["responses"][200] is (
        notifications.NOTIFICATION_PAGE
    )
    # The query parameters are the services' list arguments but the user id.
    for endpoint, contract in (
        ("orders.list_orders", orders.LIST_QUERY),
        ("notifications.list_notifications", notifications.LIST_QUERY),
    ):
        query = meta(endpoint)["query"]["properties"]
        assert "user_id" not in query
        for name, schema in query.items():
            assert schema is contract["properties"][name], (endpoint, name)
    view = meta("orders.get_order")["responses"][200]["schema"]
    assert view["properties"]["reservation"]["anyOf"][0] is inventory.RESERVATION
    assert view["properties"]["payment"]["anyOf"][0] is billing.PAYMENT


def test_the_canned_answers_here_match_the_services_contracts():
    validate(orders.ORDER, ORDER)
    validate(orders.CREATE_RESULT, {"order": ORDER, "created": False})
    validate(inventory.RESERVATION, RESERVATION)
    validate(inventory.STOCK, STOCK)
    validate(billing.PAYMENT, PAYMENT)
    validate(orders.ORDER_CREATE, ORDER_BODY)


# --- tokens and scopes -----------------------------------------------------------

_SAMPLE_PATHS = {
    "{order_id}": ORDER_ID,
    "{payment_id}": PAYMENT_ID,
    "{dispute_id}": DISPUTE_ID,
    "{sku}": "MUG-1",
}


def _url(path):
    for template, value in _SAMPLE_PATHS.items():
        path = path.replace(template, value)
    return path


def test_protected_routes_need_a_token_before_any_rpc(client, stub):
    for (method, path), scopes in ROUTES.items():
        if scopes is None:
            continue
        response = client.open(_url(path), method=method, json={})
        error = error_of(response, 401)
        assert error["code"] == "invalid_token", (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert stub.calls == []


def test_a_missing_scope_is_403_before_any_rpc(app, client, stub):
    for (method, path), scopes in ROUTES.items():
        if scopes is None:
            continue
        others = " ".join(s for s in ADMIN.split() if s not in scopes)
        response = client.open(_url(path), method=method, json={}, headers=auth(app, scope=others))
        error = error_of(response, 403)
        assert error["code"] == "insufficient_scope", (method, path)
        assert error["details"] == {"required_scope": " ".join(scopes)}
    assert stub.calls == []


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/v1/orders"),
        ("GET", "/v1/orders"),
        ("GET", f"/v1/orders/{ORDER_ID}"),
        ("POST", f"/v1/orders/{ORDER_ID}/cancel"),
        ("GET", "/v1/notifications"),
    ],
)
def test_a_token_without_a_user_is_403_user_required(app, client, stub, method, url):
    headers = {**auth(app, scope=ADMIN, user_id=None, client_id="ops"), "Idempotency-Key": "k"}
    error = error_of(client.open(url, method=method, json=ORDER_BODY, headers=headers), 403)
    assert error["code"] == "user_required"
    assert "client_credentials" in error["message"]
    assert stub.calls == []


def test_stock_is_public(client, stub):
    stub.answers[("inventory", "get_stock")] = STOCK
    response = client.get("/v1/inventory/MUG-1")
    assert response.status_code == 200
    assert response.get_json() == STOCK
    assert stub.calls == [("inventory", "get_stock", ("MUG-1",), {})]


def test_a_bad_token_is_refused_even_on_the_public_stock_route(client, stub):
    response = client.get("/v1/inventory/MUG-1", headers={"Authorization": "Bearer nope"})
    assert error_of(response, 401)["code"] == "invalid_token"
    assert stub.calls == []


# --- Idempotency-Key -------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (None, "is required"),
        ("", "is required"),
        ("k" * 256, "must be 1-255 printable ASCII characters"),
        ("caf\u00e9", "must be 1-255 printable ASCII characters"),
        ("tab\there", "must be 1-255 printable ASCII characters"),
    ],
)
def test_placing_an_order_needs_a_valid_idempotency_key(app, client, stub, key, problem):
    headers = auth(app)
    if key is not None:
        headers["Idempotency-Key"] = key
    error = error_of(client.post("/v1/orders", json=ORDER_BODY, headers=headers), 400)
    assert error["code"] == "validation_error"
    assert error["details"] == {"Idempotency-Key": problem}
    assert stub.calls == []


def test_idempotency_keys_of_255_printable_characters_are_accepted(app, client, stub):
    stub.answers[("orders", "create_order")] = {"order": ORDER, "created": True}
    for key in ("k" * 255, "a key with spaces ~!@#$%^&*()", str(uuid.uuid4())):
        headers = {**auth(app), "Idempotency-Key": key}
        assert client.post("/v1/orders", json=ORDER_BODY, headers=headers).status_code == 202
        assert stub.calls[-1][2][2] == key


def test_a_refund_key_is_optional_but_checked(app, client, stub):
    headers = {**auth(app, scope=ADMIN), "Idempotency-Key": "x" * 300}
    response = client.post(f"/v1/payments/{PAYMENT_ID}/refunds", json={}, headers=headers)
    assert error_of(response, 400)["details"] == {
        "Idempotency-Key": "must be 1-255 printable ASCII characters"
    }
    assert stub.calls == []


# --- request validation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"items": [], "payment": {"token": "t"}}, {"items"}),
        (
            {"items": [{"product_id": PRODUCT_ID, "quantity": 0}], "payment": {"token": "t"}},
            {"items.0.quantity"},
        ),
        (
            {"items": [{"product_id": "42", "quantity": 1}], "payment": {"token": "t"}},
            {"items.0.product_id"},
        ),
        (
            {
                "items": [{"product_id": PRODUCT_ID, "quantity": 1, "price": 1}],
                "payment": {"token": "t"},
            },
            {"items.0.price"},
        ),
        ({"items": [{"product_id": PRODUCT_ID, "quantity": 1}]}, {"payment"}),
        (
            {"items": [{"product_id": PRODUCT_ID, "quantity": 1}], "payment": {"token": ""}},
            {"payment.token"},
        ),
        ({**ORDER_BODY, "user_id": USER_ID}, {"user_id"}),
    ],
)
def test_order_body_is_validated_before_any_rpc(app, client, stub, body, fields):
    headers = {**auth(app), "Idempotency-Key": "k1"}
    error = error_of(client.post("/v1/orders", json=body, headers=headers), 400)
    assert error["code"] == "validation_error"
    assert set(error["details"]) == fields
    assert stub.calls == []


def test_order_body_must_be_json(app, client, stub):
    headers = {**auth(app), "Idempotency-Key": "k1"}
    response = client.post("/v1/orders", data="items=1", headers=headers)
    assert error_of(response, 415)["code"] == "unsupported_media_type"
    response = client.post("/v1/orders", data="{", content_type="application/json", headers=headers)
    assert error_of(response, 400)["code"] == "invalid_json"
    assert stub.calls == []


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/v1/orders?limit=0", "limit"),
        ("/v1/orders?limit=101", "limit"),
        ("/v1/orders?limit=x", "limit"),
        ("/v1/orders?limit=%205", "limit"),
        ("/v1/orders?limit=1&limit=2", "limit"),
        ("/v1/orders?status=lost", "status"),
        ("/v1/orders?sort=total", "sort"),
        ("/v1/orders?cursor=", "cursor"),
        ("/v1/notifications?limit=-1", "limit"),
        ("/v1/notifications?status=sent", "status"),
    ],
)
def test_list_queries_are_validated_before_any_rpc(app, client, stub, url, field):
    error = error_of(client.get(url, headers=auth(app)), 400)
    assert error["code"] == "validation_error"
    assert field in error["details"]
    assert stub.calls == []


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/v1/orders/42"),
        ("GET", f"/v1/orders/{ORDER_ID.upper()}"),
        ("GET", f"/v1/orders/{ORDER_ID}%0A"),
        ("POST", "/v1/orders/42/cancel"),
        ("GET", "/v1/payments/42"),
        ("POST", "/v1/payments/42/refunds"),
        ("POST", "/v1/payments/42/disputes"),
        ("POST", f"/v1/payments/42/disputes/{DISPUTE_ID}/resolution"),
        ("POST", f"/v1/payments/{PAYMENT_ID}/disputes/42/resolution"),
        ("GET", "/v1/inventory/mug-1"),
        ("GET", "/v1/inventory/MUG-1%0A"),
        ("PUT", "/v1/inventory/-MUG"),
    ],
)
def test_malformed_path_ids_are_404_before_any_rpc(app, client, stub, method, url):
    body = {"warehouse": "main", "on_hand": 1, "outcome": "won", "reason": "r"}
    response = client.open(url, method=method, json=body, headers=auth(app, scope=ADMIN))
    assert error_of(response, 404)["code"] == "not_found"
    assert stub.calls == []


@pytest.mark.parametrize(
    ("method", "url", "body", "fields"),
    [
        ("PUT", "/v1/inventory/MUG-1", {"warehouse": "main", "on_hand": -1}, {"on_hand"}),
        ("PUT", "/v1/inventory/MUG-1", {"on_hand": 5}, {"warehouse"}),
        ("PUT", "/v1/inventory/MUG-1", {"warehouse": "Main!", "on_hand": 5}, {"warehouse"}),
        ("PUT", "/v1/inventory/MUG-1", {"warehouse": "main", "on_hand": 1.5}, {"on_hand"}),
        (
            "POST",
            f"/v1/payments/{PAYMENT_ID}/refunds",
            {"amount": {"amount": 0, "currency": "EUR"}},
            {"amount.amount"},
        ),
        ("POST", f"/v1/payments/{PAYMENT_ID}/refunds", {"reason": ""}, {"reason"}),
        ("POST", f"/v1/payments/{PAYMENT_ID}/disputes", {}, {"reason"}),
        (
            "POST",
            f"/v1/payments/{PAYMENT_ID}/disputes",
            {"reason": "fraud", "amount": {"amount": 5, "currency": "eur"}},
            {"amount.currency"},
        ),
        (
            "POST",
            f"/v1/payments/{PAYMENT_ID}/disputes/{DISPUTE_ID}/resolution",
            {"outcome": "draw"},
            {"outcome"},
        ),
    ],
)
def test_admin_bodies_are_validated_before_any_rpc(app, client, stub, method, url, body, fields):
    response = client.open(url, method=method, json=body, headers=auth(app, scope=ADMIN))
    error = error_of(response, 400)
    assert error["code"] == "validation_error"
    assert set(error["details"]) == fields
    assert stub.calls == []


# --- what the gateway makes of the services' answers -----------------------------


def test_placing_an_order_is_202_with_location_and_replays_are_marked(app, client, stub):
    headers = {**auth(app), "Idempotency-Key": "order-1"}
    stub.answers[("orders", "create_order")] = {"order": ORDER, "created": True}
    first = client.post("/v1/orders", json=ORDER_BODY, headers=headers)
    assert first.status_code == 202
    assert first.headers["Location"] == f"/v1/orders/{ORDER_ID}"
    assert "Idempotent-Replayed" not in first.headers
    assert first.get_json() == ORDER
    assert stub.calls == [("orders", "create_order", (USER_ID, ORDER_BODY, "order-1"), {})]

    stub.answers[("orders", "create_order")] = {"order": ORDER, "created": False}
    again = client.post("/v1/orders", json=ORDER_BODY, headers=headers)
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert again.get_json() == first.get_json()


def test_a_reused_key_with_another_body_is_409(app, client, stub):
    stub.answers[("orders", "create_order")] = Conflict("this key was used for another order")
    headers = {**auth(app), "Idempotency-Key": "order-1"}
    error = error_of(client.post("/v1/orders", json=ORDER_BODY, headers=headers), 409)
    assert error["code"] == "conflict"


def test_orders_down_is_503_with_retry_after(app, client, stub):
    stub.answers[("orders", "create_order")] = ServiceUnavailable("orders", "circuit open", 7)
    headers = {**auth(app), "Idempotency-Key": "order-1"}
    response = client.post("/v1/orders", json=ORDER_BODY, headers=headers)
    assert error_of(response, 503)["code"] == "service_unavailable"
    assert response.headers["Retry-After"] == "7"


def test_list_and_cancel_are_the_callers_own(app, client, stub):
    page = {"items": [ORDER], "next_cursor": None}
    stub.answers[("orders", "list_orders")] = page
    stub.answers[("orders", "cancel_order")] = {**ORDER, "status": "cancelled"}
    response = client.get("/v1/orders?limit=5&status=pending&cursor=abc", headers=auth(app))
    assert response.status_code == 200 and response.get_json() == page
    cancel = client.post(f"/v1/orders/{ORDER_ID}/cancel", headers=auth(app))
    assert cancel.status_code == 200 and cancel.get_json()["status"] == "cancelled"
    assert stub.calls == [
        ("orders", "list_orders", (USER_ID,), {"limit": 5, "status": "pending", "cursor": "abc"}),
        ("orders", "cancel_order", (ORDER_ID, USER_ID), {}),
    ]
    stub.answers[("orders", "cancel_order")] = Conflict("the order is already cancelled")
    cancel = client.post(f"/v1/orders/{ORDER_ID}/cancel", headers=auth(app))
    assert error_of(cancel, 409)["code"] == "conflict"


def _view_answers(stub, reservation=RESERVATION, payment=PAYMENT, order=ORDER):
    stub.answers[("orders", "get_order")] = order
    stub.answers[("inventory", "get_reservation")] = reservation
    stub.answers[("billing", "get_payment_for_order")] = payment


def test_order_view_aggregates_reservation_and_payment(app, client, stub):
    _view_answers(stub)
    response = client.get(f"/v1/orders/{ORDER_ID}", headers=auth(app))
    assert response.status_code == 200
    assert response.get_json() == {**ORDER, "reservation": RESERVATION, "payment": PAYMENT}
    validate(ORDER_VIEW, response.get_json())
    assert "Agora-Degraded" not in response.headers
    assert sorted(call[:3] for call in stub.calls) == [
        ("billing", "get_payment_for_order", (ORDER_ID,)),
        ("inventory", "get_reservation", (ORDER_ID,)),
        ("orders", "get_order", (ORDER_ID, USER_ID, False)),
    ]


def test_only_an_ops_read_token_asks_for_the_operator_history(app, client, stub):
    _view_answers(stub)
    operator = auth(app, scope="profile orders:read ops:read")
    assert client.get(f"/v1/orders/{ORDER_ID}", headers=operator).status_code == 200
    assert ("orders", "get_order", (ORDER_ID, USER_ID, True)) in [c[:3] for c in stub.calls]


def test_order_view_asks_the_three_services_at_once(app, client, stub):
    # All three requests are on their way before any answer is awaited.
    _view_answers(stub)
    response = client.get(f"/v1/orders/{ORDER_ID}", headers=auth(app))
    assert response.status_code == 200
    assert response.get_json()["payment"] == PAYMENT
    kinds = [kind for kind, _service in stub.events]
    assert kinds == ["call"] * 3 + ["result"] * 3
    assert {service for _kind, service in stub.events} == {"orders", "inventory", "billing"}


def test_order_view_without_reservation_or_payment_yet(app, client, stub):
    _view_answers(stub, NotFound("no reservation"), NotFound("no payment"))
    response = client.get(f"/v1/orders/{ORDER_ID}", headers=auth(app))
    assert response.status_code == 200
    body = response.get_json()
    assert body["reservation"] is None and body["payment"] is None
    validate(ORDER_VIEW, body)
    assert body["id"] == ORDER_ID and body["status"] == "pending"
    assert "Agora-Degraded" not in response.headers


def test_order_view_degrades_when_inventory_or_billing_cannot_answer(app, client, stub):
    _view_answers(
        stub,
        ServiceUnavailable("inventory", "no instance is running"),
        UpstreamError("billing", "X"),
    )
    response = client.get(f"/v1/orders/{ORDER_ID}", headers=auth(app))
    assert response.status_code == 200
    body = response.get_json()
    assert body["reservation"] == {"state": "unavailable"}
    assert body["payment"] == {"state": "unavailable"}
    assert body["total"] == MONEY
    assert response.headers["Agora-Degraded"] == "reservation, payment"
    validate(ORDER_VIEW, body)

    _view_answers(stub, payment=ServiceUnavailable("billing", "circuit open"))
    response = client.get(f"/v1/orders/{ORDER_ID}", headers=auth(app))
    assert response.get_json()["reservation"] == RESERVATION
    assert response.headers["Agora-Degraded"] == "payment"


def test_order_view_needs_the_order(app, client, stub):
    _view_answers(stub, order=NotFound("order not found"))
    response = client.get(f"/v1/orders/{ORDER_ID}", headers=auth(app))
    assert error_of(response, 404)["code"] == "not_found"
    _view_answers(stub, order=ServiceUnavailable("orders", "no instance is running"))
    response = client.get(f"/v1/orders/{ORDER_ID}", headers=auth(app))
    assert error_of(response, 503)["details"]["service"] == "orders"
    _view_answers(stub, order=UpstreamError("orders", "KeyError"))
    assert error_of(client.get(f"/v1/orders/{ORDER_ID}", headers=auth(app)), 502)


def test_a_payment_is_seen_by_its_owner_and_billing_admins_only(app, client, stub):
    stub.answers[("billing", "get_payment")] = PAYMENT
    url = f"/v1/payments/{PAYMENT_ID}"
    assert client.get(url, headers=auth(app)).get_json() == PAYMENT
    other = client.get(url, headers=auth(app, user_id=OTHER_USER_ID))
    assert error_of(other, 404)["code"] == "not_found"
    admin = client.get(url, headers=auth(app, scope=ADMIN, user_id=OTHER_USER_ID))
    assert admin.status_code == 200
    service = auth(app, scope="orders:read billing:admin", user_id=None, client_id="ops")
    assert client.get(url, headers=service).status_code == 200
    machine = auth(app, scope="orders:read", user_id=None, client_id="ops")
    assert error_of(client.get(url, headers=machine), 404)["code"] == "not_found"


def test_refunds_and_disputes(app, client, stub):
    refunded = {**PAYMENT, "status": "refunded", "refunded": MONEY}
    stub.answers[("billing", "refund_payment")] = refunded
    stub.answers[("billing", "open_dispute")] = PAYMENT
    stub.answers[("billing", "resolve_dispute")] = PAYMENT
    admin = auth(app, scope=ADMIN)
    base = f"/v1/payments/{PAYMENT_ID}"

    response = client.post(f"{base}/refunds", json={}, headers=admin)
    assert response.status_code == 201
    assert response.headers["Location"] == base
    assert response.get_json() == refunded
    part = {"amount": 500, "currency": "EUR"}
    headers = {**admin, "Idempotency-Key": "refund-1"}
    body = {"amount": part, "reason": "broken"}
    assert client.post(f"{base}/refunds", json=body, headers=headers).status_code == 201

    response = client.post(f"{base}/disputes", json={"reason": "fraud"}, headers=admin)
    assert response.status_code == 201 and response.headers["Location"] == base
    resolution = f"{base}/disputes/{DISPUTE_ID}/resolution"
    assert client.post(resolution, json={"outcome": "won"}, headers=admin).status_code == 200
    assert [call[1:] for call in stub.calls] == [
        ("refund_payment", (PAYMENT_ID, None, "refunded by an administrator", None), {}),
        ("refund_payment", (PAYMENT_ID, part, "broken", "refund-1"), {}),
        ("open_dispute", (PAYMENT_ID, "fraud", None), {}),
        ("resolve_dispute", (PAYMENT_ID, DISPUTE_ID, "won"), {}),
    ]

    stub.answers[("billing", "refund_payment")] = Conflict("nothing left to refund")
    response = client.post(f"{base}/refunds", json={}, headers=admin)
    assert error_of(response, 409)["code"] == "conflict"


def test_setting_stock(app, client, stub):
    stub.answers[("inventory", "set_stock")] = STOCK
    body = {"warehouse": "main", "on_hand": 50}
    response = client.put("/v1/inventory/MUG-1", json=body, headers=auth(app, scope=ADMIN))
    assert response.status_code == 200 and response.get_json() == STOCK
    assert stub.calls == [("inventory", "set_stock", ("MUG-1", "main", 50), {})]
    stub.answers[("inventory", "set_stock")] = Conflict("below what is reserved")
    response = client.put("/v1/inventory/MUG-1", json=body, headers=auth(app, scope=ADMIN))
    assert error_of(response, 409)["code"] == "conflict"


def test_notifications_are_the_callers_own(app, client, stub):
    page = {"items": [], "next_cursor": None}
    stub.answers[("notifications", "list_notifications")] = page
    response = client.get("/v1/notifications?limit=10", headers=auth(app, scope="profile"))
    assert response.status_code == 200 and response.get_json() == page
    assert stub.calls == [("notifications", "list_notifications", (USER_ID,), {"limit": 10})]


class TracingStubRpc(StubRpc):
    """Opens and closes the client span of each call as RpcClient.call_async does."""

    def __init__(self, tracer, answers):
        super().__init__(answers)
        self.tracer = tracer
        self.b3 = {}

    def call_async(self, service, method, *args, **kwargs):
        span, self.b3[service] = self.tracer.start_client_span(f"rpc {service}.{method}")
        pending = super().call_async(service, method, *args, **kwargs)
        tracer = self.tracer

        class Traced:
            def result(self):
                try:
                    return pending.result()
                finally:
                    tracer.finish_client_span(span)

        return Traced()


class RecordingSender:
    def __init__(self):
        self.spans = []

    def __call__(self, payload):
        self.spans.extend(json.loads(payload))


def test_order_view_calls_are_traced_as_children_of_the_request(app, client, stub):
    tracer = app.extensions["agora.tracer"]
    sender, real_sender = RecordingSender(), tracer.sender
    traced = TracingStubRpc(tracer, stub.answers)
    _view_answers(traced)
    app.extensions["agora.rpc"] = traced  # the stub fixture puts the real one back
    tracer.sender = sender
    try:
        trace = "463ac35c9f6413ad48485a3953bb6124"
        headers = {**auth(app), "b3": f"{trace}-a2fb4a1d1a96d312-1"}
        response = client.get(f"/v1/orders/{ORDER_ID}", headers=headers)
    finally:
        tracer.sender = real_sender
    assert response.status_code == 200
    server = [span for span in sender.spans if span["kind"] == "SERVER"]
    clients = {span["name"]: span for span in sender.spans if span["kind"] == "CLIENT"}
    assert len(server) == 1 and server[0]["traceId"] == trace
    assert set(clients) == {
        "rpc orders.get_order",
        "rpc inventory.get_reservation",
        "rpc billing.get_payment_for_order",
    }
    for span in clients.values():
        assert span["traceId"] == trace
        assert span["parentId"] == server[0]["id"]
    for service, b3 in traced.b3.items():
        assert b3.startswith(f"{trace}-"), service
