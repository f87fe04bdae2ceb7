"""The real gateway (create_app) with small limits: identify, limit, then enforce.

No service is running on this vhost, so any call that got past the limiter
would answer 503 at once; a 429 proves the limiter stopped it first."""

import copy
import uuid

import pytest

from gateway.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(config, rabbit_vhost, redis_client):
    cfg = copy.deepcopy(config)
    prefix = f"{config['redis']['key_prefix']}policy-{uuid.uuid4().hex[:8]}:"
    cfg["redis"]["key_prefix"] = prefix
    cfg["gateway"]["rate_limits"]["groups"].update(
        {
            "read": "3/minute",
            "write": "2/minute",
            "token_per_ip": "3/minute",
        }
    )
    app = create_app(cfg)
    yield app.test_client()
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def test_bad_tokens_are_counted_before_they_are_refused(gateway):
    statuses = [
        gateway.get("/v1/users/me", headers={"Authorization": "Bearer forged"}).status_code
        for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


def test_public_reads_are_limited_per_ip_with_headers(gateway):
    first = gateway.get("/v1/products")
    assert first.headers["X-RateLimit-Limit"] == "3"
    assert first.headers["X-RateLimit-Remaining"] == "2"
    gateway.get("/v1/products")
    gateway.get("/v1/products")
    limited = gateway.get("/v1/products")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.get_json()["error"]["code"] == "rate_limited"
    # Another caller (as seen from the socket) has its own counter.
    other = gateway.get("/v1/products", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code != 429


def test_the_token_endpoint_limits_per_address_in_the_rfc_form(gateway):
    form = {"grant_type": "password", "client_id": "agora-web", "username": "x", "password": "y"}
    statuses = [gateway.post("/oauth/token", data=form).status_code for _ in range(4)]
    assert 429 not in statuses[:3] and statuses[3] == 429
    body = gateway.post("/oauth/token", data=form).get_json()
    assert body["error"] == "rate_limited" and "error_description" in body
    # Health probes are never limited.
    assert {gateway.get("/healthz").status_code for _ in range(10)} == {200}
