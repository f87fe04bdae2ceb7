"""GET /v1/ops/services on the real gateway app, real RabbitMQ and Redis: a test
service registered as ``catalog`` (with the catalog's broker user) is listed
with its instance, queue and breaker; killed, it is gone within the ttl."""

import copy
import uuid

import pytest

from gateway.api.ops import SERVICES_REPORT
from gateway.app import SERVICES, create_app
from gateway.discovery import announce
from services.auth.schemas import ADMIN_SCOPES
from services.chassis.config import nameko_config
from services.chassis.schemas import linear_validator
from services.chassis.service import AgoraService
from tests.support.polling import wait_until
from tests.support.tokens import bearer, trust_test_key

pytestmark = pytest.mark.integration
OWN_VHOST = True  # no other module's catalog consumes here

TTL = 2.0
PATH = "/v1/ops/services"


class Catalog(AgoraService):
    name = "catalog"


@pytest.fixture
def settings(config, rabbit_vhost, redis_client):
    """The run's config with a Redis prefix of this test's own and a short ttl."""
    cfg = copy.deepcopy(config)
    cfg["redis"]["key_prefix"] = f"{config['redis']['key_prefix']}ops-{uuid.uuid4().hex[:8]}:"
    cfg["discovery"] = {"heartbeat_interval": 0.2, "ttl": TTL}
    cfg["tracing"]["sample_rate"] = 0.0
    yield cfg
    for key in redis_client.scan_iter(match=f"{cfg['redis']['key_prefix']}*"):
        redis_client.delete(key)


@pytest.fixture
def gateway(settings):
    cfg = copy.deepcopy(settings)
    cfg["gateway"]["health_report_ttl"] = 0.05
    app = create_app(cfg)
    trust_test_key(app)  # the auth service is not running here
    worker = announce(app, "gateway-w0")
    yield app
    worker.stop()
    app.extensions["agora.rpc"].close()


@pytest.fixture
def catalog(container_factory, settings):
    cfg = nameko_config(settings, "catalog")
    cfg["INSTANCE"] = "catalog-1"
    container = container_factory(Catalog, cfg)
    container.start()
    return container


def report(app):
    response = app.test_client().get(PATH, headers=bearer(app, "ops:read"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_the_services_report_needs_the_ops_scope(gateway):
    http = gateway.test_client()
    assert http.get(PATH).status_code == 401
    customer = http.get(PATH, headers=bearer(gateway, "profile orders:read"))
    assert customer.status_code == 403
    assert customer.get_json()["error"]["code"] == "insufficient_scope"
    # The admin role holds the scope (admin tokens carry ADMIN_SCOPES).
    assert "ops:read" in ADMIN_SCOPES
    assert http.get(PATH, headers=bearer(gateway, " ".join(ADMIN_SCOPES))).status_code == 200


def test_every_service_with_its_instances_queue_and_breaker(gateway, catalog):
    body = report(gateway)
    assert not list(linear_validator(SERVICES_REPORT).iter_errors(body))
    assert list(body["services"]) == list(SERVICES)
    assert body["checks"] == {"registry": {"status": "ok"}, "rabbitmq": {"status": "ok"}}

    served = body["services"]["catalog"]
    [instance] = served["instances"]
    assert instance["process"] == "catalog-1" and instance["service"] == "catalog"
    assert instance["metrics_url"].startswith("http://")
    assert instance["last_heartbeat"].endswith("Z") and isinstance(instance["pid"], int)
    assert served["rpc_queue"] == {"name": "rpc-catalog", "messages": 0, "consumers": 1}
    assert served["breaker"] == "closed"

    # A service that never ran on this vhost: no instance, no queue yet.
    assert body["services"]["users"] == {
        "instances": [],
        "rpc_queue": {"name": "rpc-users", "messages": None, "consumers": None},
        "breaker": "closed",
    }
    [worker] = body["gateway"]["instances"]
    assert worker["process"] == "gateway-w0" and worker["metrics_url"].startswith("http://")


def test_an_open_breaker_is_reported(gateway):
    breaker = gateway.extensions["agora.rpc"].breaker("orders")
    breaker.open()
    assert report(gateway)["services"]["orders"]["breaker"] == "open"


def test_a_killed_instance_disappears_within_the_ttl(gateway, catalog):
    assert len(report(gateway)["services"]["catalog"]["instances"]) == 1
    catalog.kill()  # no deregistration: as kill -9
    wait_until(
        lambda: report(gateway)["services"]["catalog"]["instances"] == [],
        timeout=5 * TTL,
        what="the killed catalog to leave the report",
    )
    assert report(gateway)["services"]["catalog"]["rpc_queue"]["consumers"] == 0
