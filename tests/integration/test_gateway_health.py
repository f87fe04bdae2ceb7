"""/readyz and GET /v1/ops/health on the real gateway app, real RabbitMQ and Redis.

A test service registered as ``catalog`` counts the health() RPCs it gets: a
burst of probes must not become a burst of RPCs. The other services have no
instance on this vhost, so the gateway sends them nothing (and /readyz, which
calls no service, stays ready).
"""

import copy
import threading
import uuid

import pytest

from gateway.app import create_app
from services.chassis.config import nameko_config
from services.chassis.messaging import rpc
from services.chassis.service import AgoraService
from tests.support.tokens import bearer, trust_test_key

pytestmark = pytest.mark.integration
OWN_VHOST = True  # no other module's catalog answers here

HEALTH_CALLS = []
BURST = 200


class CountingCatalog(AgoraService):
    name = "catalog"

    @rpc
    def health(self):
        HEALTH_CALLS.append(1)
        return AgoraService.health(self)


@pytest.fixture
def catalog(container_factory, config, rabbit_vhost):
    container = container_factory(CountingCatalog, nameko_config(config, "catalog"))
    container.start()
    HEALTH_CALLS.clear()
    return container


def make_app(config, **gateway_settings):
    cfg = copy.deepcopy(config)
    cfg["redis"]["key_prefix"] = f"{config['redis']['key_prefix']}health-{uuid.uuid4().hex[:8]}:"
    cfg["tracing"]["sample_rate"] = 0.0
    # Long enough that the whole burst falls in one snapshot, however slow the
    # machine: the counts below are exact, not timed.
    cfg["gateway"].update({"readiness_cache_ttl": 60.0, "health_report_ttl": 60.0})
    cfg["gateway"].update(gateway_settings)
    app = create_app(cfg)
    trust_test_key(app)  # the auth service is not running here
    return app, cfg


@pytest.fixture
def gateway(config, rabbit_vhost, redis_client):
    app, cfg = make_app(config)
    yield app
    app.extensions["agora.rpc"].close()
    for key in redis_client.scan_iter(match=f"{cfg['redis']['key_prefix']}*"):
        redis_client.delete(key)


def burst(app, path, headers=None, count=BURST, threads=20):
    """``count`` GETs of ``path`` from ``threads`` concurrent clients."""
    responses = []
    lock = threading.Lock()

    def client():
        http = app.test_client()
        for _ in range(count // threads):
            response = http.get(path, headers=headers)
            with lock:
                responses.append((response.status_code, response.get_json()))

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(responses) == count
    return responses


def test_a_burst_of_readyz_calls_no_service(gateway, catalog):
    responses = burst(gateway, "/readyz")
    assert {status for status, _ in responses} == {200}
    body = responses[0][1]
    assert body == {
        "status": "ready",
        "checks": {"redis": {"status": "ok"}, "rabbitmq": {"status": "ok"}},
    }
    assert HEALTH_CALLS == []


def test_a_burst_of_health_reports_makes_one_round_of_rpcs(gateway, catalog):
    responses = burst(gateway, "/v1/ops/health", bearer(gateway, "ops:read"))
    assert {status for status, _ in responses} == {200}
    assert len(HEALTH_CALLS) == 1
    report = responses[0][1]
    assert report["checks"]["services"]["catalog"]["status"] == "ok"
    assert report["checks"]["services"]["catalog"]["service"] == "catalog"
    # Services with no instance are reported, not waited for; readiness is
    # unaffected (one service down does not pull the gateway).
    assert report["checks"]["services"]["users"]["status"] == "unreachable"
    assert report["status"] == "degraded"
    assert gateway.test_client().get("/readyz").status_code == 200


def test_the_health_report_needs_the_ops_scope(gateway, catalog):
    http = gateway.test_client()
    anonymous = http.get("/v1/ops/health")
    assert anonymous.status_code == 401
    customer = http.get("/v1/ops/health", headers=bearer(gateway, "profile orders:read"))
    assert customer.status_code == 403
    assert customer.get_json()["error"]["code"] == "insufficient_scope"
    assert HEALTH_CALLS == []


def test_the_report_is_made_again_after_its_ttl(config, rabbit_vhost, catalog):
    app, _ = make_app(config, health_report_ttl=0.0)
    try:
        http = app.test_client()
        headers = bearer(app, "ops:read")
        for expected in (1, 2, 3):
            assert http.get("/v1/ops/health", headers=headers).status_code == 200
            assert len(HEALTH_CALLS) == expected
    finally:
        app.extensions["agora.rpc"].close()


@pytest.mark.parametrize("down", ["redis", "rabbitmq"])
def test_readyz_is_503_when_the_gateway_cannot_reach_redis_or_rabbitmq(config, rabbit_vhost, down):
    cfg = copy.deepcopy(config)
    if down == "redis":
        cfg["redis"]["url"] = "redis://127.0.0.1:9/0"
        cfg["gateway"]["rate_limits"]["enabled"] = False
    else:
        cfg["amqp"]["uri"] = "amqp://guest:guest@127.0.0.1:9/none"
    app, _ = make_app(cfg)
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "not_ready"
        assert body["checks"][down]["status"] == "unreachable"
        up = "rabbitmq" if down == "redis" else "redis"
        assert body["checks"][up] == {"status": "ok"}
    finally:
        app.extensions["agora.rpc"].close()
