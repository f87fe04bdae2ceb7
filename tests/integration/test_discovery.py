"""The registry on real Redis, and a real service container in it: registered at
start with its metrics endpoint, heartbeating, gone at once when it stops and
within the ttl when it is killed."""

import copy
import json
import time
import uuid

import pytest
import requests

from services.chassis.config import nameko_config
from services.chassis.discovery import Registry, instance_record
from services.chassis.messaging import rpc
from services.chassis.redis import make_client
from services.chassis.service import AgoraService
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

# Heartbeats ten times per ttl: a loaded machine delays some, none by a ttl.
TTL = 2.0
HEARTBEAT = 0.2


@pytest.fixture
def prefix(config, redis_client):
    """A key prefix of this test's own, under the run's; its keys deleted after."""
    own = f"{config['redis']['key_prefix']}discovery-{uuid.uuid4().hex[:8]}:"
    yield own
    for key in redis_client.scan_iter(match=f"{own}*"):
        redis_client.delete(key)


@pytest.fixture
def registry(config, prefix):
    client = make_client({**config["redis"], "key_prefix": prefix})
    yield Registry(client, ttl=TTL)
    client.close()


def test_a_registered_instance_is_listed_with_its_last_heartbeat(registry):
    orders = instance_record("orders", "orders-1", "http://127.0.0.1:9101/metrics")
    users = instance_record("users", "users", None)
    registry.register(orders)
    registry.register(users)
    listed = registry.instances()
    assert [i["process"] for i in listed] == ["orders-1", "users"]
    assert listed[0] == {**orders, "last_heartbeat": listed[0]["last_heartbeat"]}
    assert listed[0]["last_heartbeat"].endswith("Z")
    assert registry.instances("users") == [{**users, "last_heartbeat": listed[1]["last_heartbeat"]}]
    assert registry.instances("billing") == []


def test_an_instance_that_stops_heartbeating_expires_and_must_register_again(registry):
    record = instance_record("catalog", "catalog", None)
    registry.register(record)
    first = registry.instances()[0]["last_heartbeat"]
    time.sleep(0.01)  # a later heartbeat, even with a coarse clock
    assert registry.heartbeat(record["instance_id"]) is True
    assert registry.instances()[0]["last_heartbeat"] > first
    wait_until(lambda: registry.instances() == [], timeout=5 * TTL, what="the record to expire")
    assert registry.heartbeat(record["instance_id"]) is False  # unknown: register again
    assert registry.instances() == []
    # Nothing of it is left behind in Redis.
    assert list(registry.redis.scan_iter(match=f"{registry.redis.key_prefix}*")) == []


def test_deregister_removes_the_instance_at_once(registry):
    record = instance_record("catalog", "catalog-2", None)
    registry.register(record)
    registry.deregister(record["instance_id"])
    assert registry.instances() == []


class DiscoveryProbe(AgoraService):
    name = "discovery_probe"

    @rpc
    def ping(self):
        return "pong"


@pytest.fixture
def probe_config(config, rabbit_vhost, redis_client, prefix):
    cfg = nameko_config(config, "discovery_probe")
    cfg["INSTANCE"] = "discovery_probe-2"
    cfg["AGORA"] = copy.deepcopy(cfg["AGORA"])
    cfg["AGORA"]["redis"]["key_prefix"] = prefix
    cfg["AGORA"]["discovery"] = {"heartbeat_interval": HEARTBEAT, "ttl": TTL}
    return cfg


def test_a_service_registers_at_start_heartbeats_and_leaves_on_stop(
    container_factory, probe_config, registry
):
    container = container_factory(DiscoveryProbe, probe_config)
    container.start()
    [instance] = registry.instances("discovery_probe")
    assert instance["process"] == "discovery_probe-2"
    assert instance["metrics_url"].startswith("http://127.0.0.1:")
    assert requests.get(instance["metrics_url"], timeout=5).status_code == 200
    # It heartbeats: it outlives several ttls.
    first = instance["last_heartbeat"]
    wait_until(
        lambda: registry.instances("discovery_probe")[0]["last_heartbeat"] > first,
        what="a heartbeat",
    )
    time.sleep(2 * TTL)
    assert [i["instance_id"] for i in registry.instances()] == [instance["instance_id"]]
    container.stop()
    assert registry.instances() == []


def test_a_killed_service_vanishes_within_the_ttl(container_factory, probe_config, registry):
    container = container_factory(DiscoveryProbe, probe_config)
    container.start()
    assert len(registry.instances("discovery_probe")) == 1
    container.kill()  # no deregistration, as with kill -9
    assert len(registry.instances("discovery_probe")) == 1
    wait_until(
        lambda: registry.instances("discovery_probe") == [],
        timeout=3 * TTL,
        what="the killed instance to expire",
    )


def test_a_service_starts_and_serves_with_redis_down_then_registers(
    container_factory, probe_config, registry
):
    """Redis down at start: registration fails quietly; it registers once Redis answers."""
    cfg = copy.deepcopy(probe_config)
    real_url = cfg["AGORA"]["redis"]["url"]
    cfg["AGORA"]["redis"]["url"] = "redis://127.0.0.1:9/0"  # nothing listens there
    container = container_factory(DiscoveryProbe, cfg)
    container.start()
    assert registry.instances() == []
    [discovery] = [d for d in container.dependencies if d.attr_name == "discovery"]
    # Redis comes back (the announcer's client is pointed at the real one).
    discovery.registry.redis = make_client({**cfg["AGORA"]["redis"], "url": real_url})
    wait_until(lambda: registry.instances("discovery_probe"), what="the late registration")


def test_agora_run_s_prometheus_targets_follow_the_registry(config, prefix, registry, tmp_path):
    from agora.targets import PrometheusTargets, targets_path

    settings = {
        "redis": {**config["redis"], "key_prefix": prefix},
        "discovery": {"heartbeat_interval": HEARTBEAT, "ttl": TTL},
    }
    path = targets_path(tmp_path)
    orders = instance_record("orders", "orders-1", "http://127.0.0.1:40001/metrics")
    registry.register(orders)
    targets = PrometheusTargets(settings, path).start()
    try:
        expected = [
            {"targets": ["127.0.0.1:40001"], "labels": {"service": "orders", "process": "orders-1"}}
        ]
        wait_until(lambda: path.exists() and json.loads(path.read_text()) == expected)
        registry.register(
            instance_record("gateway", "gateway-w0", "http://127.0.0.1:40100/metrics")
        )
        wait_until(lambda: len(json.loads(path.read_text())) == 2, what="the new target")
        registry.deregister(orders["instance_id"])

        def processes():
            return [group["labels"]["process"] for group in json.loads(path.read_text())]

        wait_until(lambda: processes() == ["gateway-w0"], what="the stopped one to leave")
    finally:
        targets.stop()
    assert not path.exists()  # nothing it named runs once agora run has exited
