"""The saga's guarantees with several processes of each saga service
(``services.<name>.instances``): the oversell, crash and exactly-once tests of
the single-instance platform, run again here on a platform of its own, and what
only several instances can show: each one consumes its service's queues, and
the others carry the saga while one of each is killed.

Instances share RPC calls and events through RabbitMQ (one queue, several
consumers), outbox rows and timer work through ``FOR UPDATE SKIP LOCKED``; the
inbox makes a redelivery harmless whichever instance gets it."""

import shutil
import subprocess

import pytest
import yaml
from nameko.standalone.rpc import ClusterRpcProxy

from services.chassis.config import amqp_vhost, nameko_config
from tests.e2e.commerce import Ledgers, Shop
from tests.e2e.conftest import admin_access_token, running_platform, seed_demo

# The single-instance tests, collected again in this module: they run against
# the fixtures below, so against the scaled platform.
from tests.e2e.test_orders_saga import test_two_hundred_orders_for_fifty_in_stock  # noqa: F401
from tests.e2e.test_reliability import (  # noqa: F401
    orders_survive_killed_processes,
    test_a_duplicated_event_has_one_effect,
    test_a_service_killed_mid_batch_loses_nothing,
)

pytestmark = pytest.mark.e2e

INSTANCES = {"orders": 3, "inventory": 2, "billing": 2}


@pytest.fixture(scope="module")
def platform(rabbit_vhost, redis_client, zipkin, smtp, sms, tmp_path_factory):
    overlay = tmp_path_factory.mktemp("scale-out") / "instances.yaml"
    services = {name: {"instances": count} for name, count in INSTANCES.items()}
    # PostgreSQL's 100 connections are shared with the other platform and the
    # integration tests: each process here holds at most 2 + 2 per database.
    overlay.write_text(yaml.safe_dump({"services": services, "postgres": {"pool_size": 2}}))
    with running_platform(zipkin, smtp, sms, name="e2e-scaled", overlay=overlay) as running:
        yield running


@pytest.fixture(scope="module")
def rpc(platform):
    with ClusterRpcProxy(nameko_config(platform.config, "tests"), timeout=10) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def demo(platform, rpc):
    return seed_demo(platform, rpc)


@pytest.fixture(scope="module")
def admin_token(platform, demo):
    return admin_access_token(platform, demo)


@pytest.fixture(scope="module")
def shop(platform, demo, admin_token):
    return Shop(platform.base_url, admin_token, demo["web_client_id"])


@pytest.fixture(scope="module")
def ledgers(platform):
    ledgers = Ledgers(platform.config)
    yield ledgers
    ledgers.dispose()


@pytest.fixture(scope="module", autouse=True)
def event_tap(platform):
    """The session's tap (checked by test_zz_event_contract) watches the other
    platform; the same events from this one add nothing to that check."""
    return None


def consumers_per_queue(config):
    command = [shutil.which("rabbitmqctl"), "-q", "list_queues", "-p", amqp_vhost(config)]
    command += ["--no-table-headers", "name", "consumers"]
    listing = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {name: int(count) for name, count in (line.split() for line in listing.splitlines())}


def is_handler_queue(name, service):
    """``evt-<source>-<event>--<service>.<method>``, not one of its delay queues."""
    return name.startswith("evt-") and f"--{service}." in name and ".backoff-" not in name


def test_every_instance_has_started_and_consumes_its_service_queues(platform, rpc):
    for service, count in INSTANCES.items():
        names = platform.processes(service)
        assert names == [f"{service}-{n}" for n in range(1, count + 1)]
        assert all(platform.children[name].alive() for name in names)
        # The broker hands calls to the consumers in turn: each instance answers.
        answered = {rpc[service].health()["instance"] for _ in range(4 * count)}
        assert answered == set(names)
    assert platform.processes("users") == ["users"]  # one, as configured by default

    queues = consumers_per_queue(platform.config)
    for service, count in INSTANCES.items():
        # Its RPC queue and every event queue it handles: one consumer per instance.
        own = [
            name for name in queues if name == f"rpc-{service}" or is_handler_queue(name, service)
        ]
        assert f"rpc-{service}" in own and len(own) > 1, sorted(queues)
        assert {name: queues[name] for name in own} == {name: count for name in own}


def test_one_instance_of_each_saga_service_killed_mid_batch_loses_nothing(shop, ledgers, platform):
    """The other instances carry every saga on; the killed ones come back."""
    victims = [platform.processes(service)[0] for service in INSTANCES]
    orders_survive_killed_processes(shop, ledgers, platform, victims)
