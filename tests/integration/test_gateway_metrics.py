"""The gateway's metrics, read as Prometheus reads them: the real app (create_app)
and its RPC client on the real brokers, then a GET of this process's /metrics
(what a gunicorn worker serves), parsed by prometheus_client.

Every process has one registry, so each test compares a scrape after its
requests with one before (``delta``)."""

import copy
import uuid

import eventlet
import pytest

from gateway.app import create_app
from gateway.auth.tokens import KeyCache, TokenVerifier
from gateway.rpc import RpcClient, ServiceUnavailable
from services.chassis import metrics
from services.chassis.config import nameko_config
from services.chassis.errors import NotFound
from services.chassis.messaging import rpc
from services.chassis.service import VERSION, AgoraService
from services.chassis.tracing import Tracer
from tests.support.metrics import scrape
from tests.unit.test_token_verifier import KEY, claims, public_jwks, sign

pytestmark = pytest.mark.integration
OWN_VHOST = True  # no platform service answers here: product reads get 503 at once

PRODUCT_ROUTE = "/v1/products/<product_id>"


class MeteredEcho(AgoraService):
    name = "gw_metered"

    @rpc
    def echo(self, value):
        return value

    @rpc
    def missing(self):
        raise NotFound("no such thing")

    @rpc
    def slow(self, seconds):
        eventlet.sleep(seconds)
        return "late"


@pytest.fixture
def gateway(config, rabbit_vhost, redis_client):
    cfg = copy.deepcopy(config)
    prefix = f"{config['redis']['key_prefix']}gwmetrics-{uuid.uuid4().hex[:8]}:"
    cfg["redis"]["key_prefix"] = prefix
    cfg["tracing"]["sample_rate"] = 0.0
    cfg["gateway"]["rate_limits"]["groups"]["write"] = "1/minute"
    app = create_app(cfg)
    keys = KeyCache(lambda: public_jwks(KEY), ttl=300, min_refresh_interval=5)
    app.extensions["agora.tokens"] = TokenVerifier(
        keys, cfg["auth"], revocations=app.extensions["agora.redis"]
    )
    yield app
    app.extensions["agora.rpc"].close()
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


@pytest.fixture
def client(config, rabbit_vhost):
    # As the operator: the gateway's broker user may call only the platform's methods.
    tracer = Tracer("gateway", {**config["tracing"], "sample_rate": 0.0})
    settings = {"timeout": 0.5, "breaker": {"fail_max": 2, "reset_timeout": 30}}
    rpc_client = RpcClient(nameko_config(config, "gw_client"), settings, tracer)
    yield rpc_client
    rpc_client.close()


@pytest.fixture
def echo(container_factory, config, rabbit_vhost):
    container = container_factory(MeteredEcho, nameko_config(config, "gw_metered"))
    container.start()
    return container


def endpoint():
    url = metrics.exposed_url()
    assert url is not None, "create_app serves /metrics"
    return url


def delta(before, after, name, **labels):
    return after.value(name, **labels) - before.value(name, **labels)


def test_requests_count_by_route_template_method_and_status(gateway):
    http = gateway.test_client()
    before = scrape(endpoint())
    assert http.get("/readyz").status_code == 200
    assert http.get(f"/v1/products/{uuid.uuid4()}").status_code == 503  # no catalog here
    assert http.get("/v1/no/such/path").status_code == 404
    assert http.open("/readyz", method="BREW").status_code == 405
    after = scrape(endpoint())

    requests = "agora_gateway_http_requests_total"
    assert delta(before, after, requests, route="/readyz", method="GET", status="200") == 1
    # The URL rule, not the path: one series for every product.
    assert delta(before, after, requests, route=PRODUCT_ROUTE, method="GET", status="503") == 1
    assert delta(before, after, requests, route="unmatched", method="GET", status="404") == 1
    # A method nobody defined is not a label value of its own.
    assert delta(before, after, requests, route="unmatched", method="other", status="405") == 1
    durations = "agora_gateway_http_request_duration_seconds_count"
    assert delta(before, after, durations, route=PRODUCT_ROUTE, method="GET") == 1
    assert after.value("agora_build_info", service="gateway", version=VERSION) == 1
    # The product read called the catalog, which has no instance: unavailable.
    calls = "agora_gateway_rpc_calls_total"
    outcome = {"service": "catalog", "method": "get_product", "outcome": "unavailable"}
    assert delta(before, after, calls, **outcome) == 1


def test_a_rate_limited_request_counts_its_group_and_its_429(gateway):
    http = gateway.test_client()
    before = scrape(endpoint())
    statuses = [http.post("/v1/users", json={}).status_code for _ in range(2)]
    after = scrape(endpoint())
    assert statuses[1] == 429
    assert delta(before, after, "agora_gateway_rate_limited_total", group="write") == 1
    requests = "agora_gateway_http_requests_total"
    assert delta(before, after, requests, route="/v1/users", method="POST", status="429") == 1


def test_refused_tokens_count_by_reason(gateway):
    http = gateway.test_client()
    auth = gateway.config["AGORA"]["auth"]

    def bearer(**overrides):
        values = {"iss": auth["issuer"], "aud": auth["audience"], **overrides}
        token = sign(claims(**values))
        return {"Authorization": f"Bearer {token}"}

    before = scrape(endpoint())
    assert http.get("/v1/users/me").status_code == 401
    assert http.get("/v1/users/me", headers={"Authorization": "Bearer forged"}).status_code == 401
    assert http.get("/v1/users/me", headers=bearer(aud="someone-else")).status_code == 401
    assert http.get("/v1/users/me", headers=bearer(exp=1, iat=0, nbf=0)).status_code == 401
    assert http.get("/v1/users/me", headers=bearer(scope="orders:read")).status_code == 403
    after = scrape(endpoint())

    rejections = "agora_gateway_token_rejections_total"
    for reason in ("missing", "malformed", "wrong_audience", "expired", "insufficient_scope"):
        assert delta(before, after, rejections, reason=reason) == 1, reason


def test_rpc_calls_count_ok_error_timeout_and_the_breaker(client, echo):
    before = scrape(endpoint())
    assert client.call("gw_metered", "echo", 1) == 1
    with pytest.raises(NotFound):
        client.call("gw_metered", "missing")
    for _ in range(2):  # fail_max 2: the second timeout opens the breaker
        with pytest.raises(ServiceUnavailable):
            client.call("gw_metered", "slow", 2)
    with pytest.raises(ServiceUnavailable, match="circuit open"):
        client.call("gw_metered", "echo", 2)
    after = scrape(endpoint())

    calls = "agora_gateway_rpc_calls_total"
    service = {"service": "gw_metered"}
    assert delta(before, after, calls, method="echo", outcome="ok", **service) == 1
    assert delta(before, after, calls, method="missing", outcome="error", **service) == 1
    # The call that trips the breaker is still counted as what it was: a timeout.
    assert delta(before, after, calls, method="slow", outcome="timeout", **service) == 2
    assert delta(before, after, calls, method="echo", outcome="breaker_open", **service) == 1
    durations = "agora_gateway_rpc_call_duration_seconds_count"
    assert delta(before, after, durations, method="slow", **service) == 2
    assert after.value("agora_gateway_breaker_state", **service) == 2
    transitions = "agora_gateway_breaker_transitions_total"
    assert delta(before, after, transitions, state="open", **service) == 1
