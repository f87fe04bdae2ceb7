"""`agora status` (`make status`): with the platform stopped it says what is
down; with a service instance, a dead letter and a gateway running it shows them."""

import copy
import os
import subprocess
import sys
import threading
import uuid

import pytest
from kombu import Connection, Producer
from werkzeug.serving import make_server

from agora.cli import main
from agora.platform import free_port
from gateway.app import create_app
from services.chassis.config import amqp_vhost, nameko_config
from services.chassis.deadletter import dead_letter_queue
from services.chassis.service import AgoraService

pytestmark = pytest.mark.integration
OWN_VHOST = True  # its queues hold only what these tests put there


@pytest.fixture(autouse=True)
def registry_prefix(config, redis_client, monkeypatch):
    """A Redis prefix of this test's own: the run's registry holds, for up to
    a ttl, instances that other modules' containers left when they were killed
    (nameko's container_factory kills them at teardown)."""
    prefix = f"{config['redis']['key_prefix']}status-{uuid.uuid4().hex[:8]}:"
    monkeypatch.setenv("AGORA_REDIS_PREFIX", prefix)
    settings = copy.deepcopy(config)
    settings["redis"]["key_prefix"] = prefix
    yield settings
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def status(**env):
    return subprocess.run(
        [sys.executable, "-m", "agora", "status"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def section(output, title):
    """The lines of one section of the report (up to the next blank line)."""
    lines = output.splitlines()
    start = lines.index(title) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_with_nothing_running_it_says_what_is_down(config):
    vhost = amqp_vhost(config)  # this module's: every queue is still undeclared
    result = status(AGORA_AMQP_VHOST=vhost, AGORA_GATEWAY_PORT=str(free_port()))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    services = section(result.stdout, "Services")
    assert services[0].split()[:3] == ["SERVICE", "PROCESS", "PID"]
    rows = {line.split()[0]: line.split()[1:] for line in services[1:]}
    assert rows["catalog"] == ["none", "running", "-", "-", "-"]  # no queue, no breaker yet
    assert rows["gateway"] == ["none", "running"]
    assert "Event queues" in result.stdout and "Dead letters" in result.stdout
    down = result.stdout.split("Down:\n", 1)[1]
    assert "no live instance of: users, auth, catalog" in down
    assert "the gateway is not answering" in down


def test_with_brokers_down_it_still_answers(config):
    result = status(AGORA_AMQP_PORT="1", AGORA_REDIS_PORT="3", AGORA_GATEWAY_PORT="4")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "RabbitMQ is unreachable" in result.stdout
    assert "Redis (the registry) is unreachable" in result.stdout
    assert "catalog        ?" in result.stdout


class Catalog(AgoraService):
    name = "catalog"


@pytest.fixture
def catalog(container_factory, registry_prefix):
    cfg = nameko_config(registry_prefix, "catalog")
    cfg["INSTANCE"] = "catalog-7"
    container = container_factory(Catalog, cfg)
    container.start()
    return container


@pytest.fixture
def gateway(config, redis_client):
    app = create_app(config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    app.extensions["agora.rpc"].close()


@pytest.fixture
def dead_letter(config):
    with Connection(config["amqp"]["uri"]) as connection:
        queue = dead_letter_queue("billing")(connection.channel())
        queue.declare()
        Producer(connection.channel()).publish(
            {"event_id": "e"}, exchange="", routing_key=queue.name, serializer="json"
        )
    yield
    with Connection(config["amqp"]["uri"]) as connection:
        dead_letter_queue("billing")(connection.channel()).delete()


# Two gateway workers' breakers as their /metrics endpoints expose them.
BREAKER_METRICS = (
    'agora_gateway_breaker_state{service="catalog"} 1.0\n'
    'agora_gateway_breaker_state{service="orders"} 0.0\n',
    'agora_gateway_breaker_state{service="catalog"} 0.0\n'
    'agora_gateway_breaker_state{service="orders"} 2.0\n',
)


@pytest.fixture
def gateway_workers(registry_prefix):
    """Two gateway workers in the registry, each with a /metrics endpoint."""
    from werkzeug.wrappers import Response

    from services.chassis.discovery import instance_record, registry_from_config

    registry = registry_from_config(registry_prefix)
    servers, records = [], []
    for n, text in enumerate(BREAKER_METRICS):
        app = Response(
            "# TYPE agora_gateway_breaker_state gauge\n" + text,
            content_type="text/plain; version=0.0.4",
        )
        server = make_server("127.0.0.1", 0, app)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        records.append(instance_record("gateway", f"gateway-w{n}", url))
        registry.register(records[-1])
        servers.append(server)
    yield
    for server, record in zip(servers, records, strict=True):
        registry.deregister(record["instance_id"])
        server.shutdown()
    registry.redis.close()


def test_it_shows_instances_queues_dead_letters_and_the_gateway(
    config, catalog, gateway, gateway_workers, dead_letter, monkeypatch, capsys
):
    monkeypatch.setenv("AGORA_AMQP_VHOST", amqp_vhost(config))
    monkeypatch.setenv("AGORA_GATEWAY_PORT", str(gateway))
    main(["status"])
    output = capsys.readouterr().out

    [row] = [line.split() for line in section(output, "Services") if "catalog-7" in line]
    assert row[:3] == ["catalog", "catalog-7", str(os.getpid())]
    assert row[-4].startswith("http://127.0.0.1:")  # its metrics endpoint
    # rpc-catalog: no message waiting, one consumer; the gateway workers' breaker
    assert row[-3:] == ["0", "1", "half_open"]
    [orders] = [line.split() for line in section(output, "Services") if line.startswith("orders")]
    assert orders[-1] == "open"  # the worst of the two workers
    dead = {line.split()[0]: line.split()[-1] for line in section(output, "Dead letters")[1:]}
    assert dead["billing"] == "1"
    assert f"Gateway http://127.0.0.1:{gateway}/readyz: ready" in output
    assert "the gateway is" not in output


def test_a_missing_vhost_is_named(config):
    result = status(AGORA_AMQP_VHOST="agora-no-such-vhost", AGORA_GATEWAY_PORT=str(free_port()))
    assert result.returncode == 0, result.stderr
    assert "RabbitMQ has no vhost 'agora-no-such-vhost'" in result.stdout
