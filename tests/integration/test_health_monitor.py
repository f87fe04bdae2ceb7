"""An instance that cannot reach its database stops consuming, for real.

Two catalog instances (real containers, real PostgreSQL, Redis and RabbitMQ);
catalog-1 reaches PostgreSQL through a switchable TCP proxy. While the proxy is
cut, catalog-1 cancels its consumers and every call is answered by catalog-2;
once it is restored both serve again."""

import copy
import uuid

import pytest
from kombu import Connection
from nameko.standalone.rpc import ClusterRpcProxy
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url

from services.catalog.service import CatalogService
from services.chassis.config import nameko_config
from tests.support.polling import wait_until
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration
OWN_VHOST = True  # only these two instances consume rpc-catalog

CALLS_WHILE_CUT = 30


@pytest.fixture
def proxy(config):
    url = make_url(config["postgres"]["url"])
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy
    proxy.stop()


def catalog_config(config, instance, postgres_port=None, dependencies=("database", "redis")):
    settings = copy.deepcopy(config)
    settings["health_monitor"] = {
        "interval": 0.2,
        "timeout": 2.0,
        "failure_threshold": 2,
        "dependencies": list(dependencies),
    }
    if postgres_port is not None:
        settings["postgres"]["url"] = f"postgresql+psycopg2://127.0.0.1:{postgres_port}"
    cfg = nameko_config(settings, "catalog")
    cfg["INSTANCE"] = instance
    return cfg


@pytest.fixture
def start_catalog(container_factory, config, rabbit_vhost, databases, redis_client):
    def start(instance, postgres_port=None, **options):
        container = container_factory(
            CatalogService, catalog_config(config, instance, postgres_port, **options)
        )
        container.start()
        return container

    return start


@pytest.fixture
def rpc(config, rabbit_vhost):
    with ClusterRpcProxy(nameko_config(config, "tests"), timeout=10) as proxy:
        yield proxy


def monitor(container):
    [provider] = [d for d in container.dependencies if d.attr_name == "health_monitor"]
    return provider


def rpc_consumers(config):
    with Connection(config["amqp"]["uri"]) as connection:
        _name, _messages, consumers = connection.channel().queue_declare(
            "rpc-catalog", passive=True
        )
    return consumers


def answering(rpc, calls=8):
    return {rpc.catalog.health()["instance"] for _ in range(calls)}


def new_product():
    return {
        "sku": f"HM-{uuid.uuid4().hex[:10]}".upper(),
        "name": "Health-monitored mug",
        "price": {"amount": 1000, "currency": "EUR"},
    }


def gauge(name, **labels):
    return REGISTRY.get_sample_value(name, labels)


def test_a_cut_instance_leaves_every_call_to_the_healthy_one(config, proxy, start_catalog, rpc):
    cut_off = start_catalog("catalog-1", postgres_port=proxy.port)
    start_catalog("catalog-2")
    wait_until(lambda: answering(rpc) == {"catalog-1", "catalog-2"}, what="both instances")

    proxy.cut()
    wait_until(lambda: not monitor(cut_off).consuming, what="catalog-1 to stop consuming")
    wait_until(lambda: rpc_consumers(config) == 1, what="one consumer of rpc-catalog")
    for _ in range(CALLS_WHILE_CUT):
        report = rpc.catalog.health()
        assert report["instance"] == "catalog-2" and report["status"] == "ok", report
        # A write: only an instance that reaches the database can do it.
        created = rpc.catalog.create_product(new_product())
        assert rpc.catalog.get_product(created["id"]) == created

    proxy.restore()
    wait_until(lambda: monitor(cut_off).consuming, what="catalog-1 to consume again")
    wait_until(lambda: rpc_consumers(config) == 2, what="two consumers of rpc-catalog")
    wait_until(lambda: answering(rpc) == {"catalog-1", "catalog-2"}, what="both answering")


def test_the_gauges_follow_the_instance_and_its_dependencies(config, proxy, start_catalog):
    container = start_catalog("catalog", postgres_port=proxy.port)
    consuming = {"service": "catalog"}
    database = {"service": "catalog", "dependency": "database"}
    redis = {"service": "catalog", "dependency": "redis"}
    wait_until(lambda: gauge("agora_dependency_up", **database) == 1, what="a first check")
    assert gauge("agora_instance_consuming", **consuming) == 1

    proxy.cut()
    wait_until(lambda: not monitor(container).consuming, what="the instance to stop consuming")
    assert gauge("agora_instance_consuming", **consuming) == 0
    assert gauge("agora_dependency_up", **database) == 0
    assert gauge("agora_dependency_up", **redis) == 1
    wait_until(lambda: rpc_consumers(config) == 0, what="no consumer of rpc-catalog")

    proxy.restore()
    wait_until(lambda: monitor(container).consuming, what="the instance to consume again")
    assert gauge("agora_instance_consuming", **consuming) == 1
    assert gauge("agora_dependency_up", **database) == 1
    wait_until(lambda: rpc_consumers(config) == 1, what="its consumer back on rpc-catalog")


def test_a_dependency_left_out_of_the_list_is_watched_but_does_not_stop_it(
    config, proxy, start_catalog
):
    container = start_catalog("catalog", postgres_port=proxy.port, dependencies=["redis"])
    database = {"service": "catalog", "dependency": "database"}
    wait_until(lambda: gauge("agora_dependency_up", **database) == 1, what="a first check")
    proxy.cut()
    wait_until(lambda: gauge("agora_dependency_up", **database) == 0, what="the database down")
    assert monitor(container).consuming
    assert gauge("agora_instance_consuming", service="catalog") == 1
    assert rpc_consumers(config) == 1
