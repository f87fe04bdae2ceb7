"""The real gateway app refuses every malformed body with a 400 JSON error before
any RPC, and logs nothing as an incident.

No broker listens at the configured address: a body that got past the gateway
would answer 503, so a 400 proves it was refused at the edge."""

import copy
import json
import logging

import pytest

import gateway.api
from gateway.api import MAX_JSON_DEPTH, notifications, orders, products
from gateway.app import create_app

pytestmark = pytest.mark.unit

REGISTER = {"email": "ada@example.com", "password": "correct horse", "name": "Ada"}


@pytest.fixture(scope="module")
def client(config):
    config = copy.deepcopy(config)
    config["amqp"]["uri"] = "amqp://guest:guest@127.0.0.1:9/none"
    config["gateway"]["rate_limits"]["enabled"] = False  # no Redis needed
    config["tracing"]["sample_rate"] = 0.0
    return create_app(config).test_client()


@pytest.fixture
def incidents(caplog):
    """Log records an operator would treat as incidents: errors, tracebacks."""
    caplog.set_level(logging.WARNING)
    yield lambda: [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def post_raw(client, body, path="/v1/users"):
    data = body if isinstance(body, bytes) else body.encode()
    return client.post(path, data=data, content_type="application/json")


def invalid_json(response):
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.headers["Content-Type"] == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == "invalid_json"
    return error["details"]["body"]


def test_sixty_thousand_brackets_are_a_400_not_a_recursion_error(client, incidents):
    assert "deeper" in invalid_json(post_raw(client, "[" * 60000))
    assert "deeper" in invalid_json(post_raw(client, '{"a":' * 10000 + "1" + "}" * 10000))
    assert incidents() == []


def test_nesting_is_bounded_below_the_parser_limit(client, incidents):
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert "deeper" in invalid_json(post_raw(client, deep))
    # At the limit the body is parsed and the contract answers instead.
    ok_depth = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    response = post_raw(client, ok_depth)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
    assert incidents() == []


@pytest.mark.parametrize(
    "escaped",
    ["\\ud800@x.io", "a\\udfff@x.io", "\\udc00\\ud800@x.io"],
    ids=["high", "low", "reversed-pair"],
)
def test_a_lone_surrogate_is_a_400_not_a_502(client, incidents, escaped):
    body = json.dumps(REGISTER)[:-1] + f', "phone": null, "x": "{escaped}"}}'
    assert "surrogate" in invalid_json(post_raw(client, body))
    body = '{"email": "' + escaped + '", "password": "correct horse", "name": "Ada"}'
    assert "surrogate" in invalid_json(post_raw(client, body))
    # As an object key too.
    assert "surrogate" in invalid_json(post_raw(client, '{"' + escaped + '": 1}'))
    assert incidents() == []


def test_a_valid_surrogate_pair_is_text(client):
    response = post_raw(client, '{"name": "\\ud83d\\ude00"}')
    assert response.status_code == 400  # the contract, not the JSON parser
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert "name" not in error["details"] and "email" in error["details"]


@pytest.mark.parametrize(
    "body",
    [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": "\xff"}', b"1" * 5000],
    ids=["nan", "infinity", "minus-infinity", "not-utf8", "huge-integer"],
)
def test_what_is_not_json_text_is_a_400(client, incidents, body):
    invalid_json(post_raw(client, body))
    assert incidents() == []


def test_the_quadratic_email_is_a_400_at_once(client, incidents):
    body = {**REGISTER, "email": "a@" + "." * 60000 + "@"}
    response = client.post("/v1/users", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == {"email": "must be at most 254 characters"}
    # Under the length limit the pattern (RE2) refuses it as fast.
    body = {**REGISTER, "email": "a@" + "." * 250 + "@"}
    response = client.post("/v1/users", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["details"] == {"email": "must be a valid email address"}
    assert incidents() == []


@pytest.mark.parametrize("limit", [" 7", "7 ", "+7", "1_0", "٣", "0x10", "7.0", ""])
def test_product_listing_reads_integers_as_every_listing_does(client, limit):
    response = client.get("/v1/products", query_string={"limit": limit})
    assert response.status_code == 400
    assert response.get_json()["error"]["details"] == {"limit": "must be an integer"}


def test_every_listing_parses_its_query_in_one_place():
    for module in (products, orders, notifications):
        assert module.query_args is gateway.api.query_args
