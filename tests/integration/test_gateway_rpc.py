"""The gateway's RPC client on real RabbitMQ: pool, timeouts, breakers."""

import threading
import time

import eventlet
import pytest
from kombu import Connection
from nameko.exceptions import RpcTimeout

from gateway.rpc import PooledProxy, RpcClient, ServiceUnavailable
from services.chassis.config import nameko_config
from services.chassis.errors import NotFound
from services.chassis.messaging import rpc
from services.chassis.service import AgoraService
from services.chassis.tracing import Tracer

pytestmark = pytest.mark.integration


class EchoService(AgoraService):
    name = "gw_echo"

    @rpc
    def echo(self, value):
        eventlet.sleep(0.001)
        return value

    @rpc
    def slow(self, seconds):
        eventlet.sleep(seconds)
        return "late"

    @rpc
    def missing(self):
        raise NotFound("no such thing", {"id": "x"})


SETTINGS = {
    "pool_size": 4,
    "timeout": 0.5,
    "acquire_timeout": 2.0,
    "breaker": {"fail_max": 2, "reset_timeout": 30},
}


@pytest.fixture
def client(config, rabbit_vhost):
    # The pool against a test service: as the operator, since the gateway's broker
    # user may call only the platform's methods (agora/broker.py RPC_CALLS).
    tracer = Tracer("gateway", {**config["tracing"], "sample_rate": 0.0})
    rpc_client = RpcClient(nameko_config(config, "gw_client"), SETTINGS, tracer)
    yield rpc_client
    rpc_client.close()


@pytest.fixture
def echo(container_factory, config, rabbit_vhost):
    container = container_factory(EchoService, nameko_config(config, "gw_echo"))
    container.start()
    return container


def test_threads_sharing_the_pool_get_their_own_replies(client, echo):
    errors = []

    def worker(n):
        for i in range(25):
            value = f"{n}-{i}"
            got = client.call("gw_echo", "echo", value)
            if got != value:
                errors.append((value, got))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert client.pool._created <= SETTINGS["pool_size"]


def test_business_errors_pass_through_and_do_not_trip_the_breaker(client, echo):
    for _ in range(5):
        with pytest.raises(NotFound) as excinfo:
            client.call("gw_echo", "missing")
    assert excinfo.value.details == {"id": "x"}
    assert client.breaker("gw_echo").current_state == "closed"


def test_a_timeout_is_unavailable_and_the_proxy_is_replaced(client, echo):
    with pytest.raises(ServiceUnavailable) as excinfo:
        client.call("gw_echo", "slow", 2)
    assert "no reply within" in excinfo.value.reason
    # The timed-out proxy was dropped: the next call gets a clean one.
    assert client.call("gw_echo", "echo", "after") == "after"


def test_a_missing_service_opens_the_breaker(client, rabbit_vhost):
    for _ in range(SETTINGS["breaker"]["fail_max"]):
        with pytest.raises(ServiceUnavailable) as excinfo:
            client.call("gw_nobody", "anything")
        assert excinfo.value.reason in ("no instance is running", "circuit open")
    with pytest.raises(ServiceUnavailable) as excinfo:
        client.call("gw_nobody", "anything")
    assert excinfo.value.reason == "circuit open"
    assert 1 <= excinfo.value.retry_after <= SETTINGS["breaker"]["reset_timeout"]


def test_probe_reports_running_and_missing_services(client, echo):
    reports = client.probe(["gw_echo", "gw_nobody"], timeout=1.0)
    assert reports["gw_echo"]["status"] == "ok"
    assert reports["gw_echo"]["service"] == "gw_echo"
    assert reports["gw_nobody"]["status"] == "unreachable"


def test_a_stopped_service_fails_fast(client, echo):
    assert client.call("gw_echo", "echo", "up") == "up"
    echo.stop()
    client.instances._known.clear()  # do not wait out the one-second memory
    with pytest.raises(ServiceUnavailable) as excinfo:
        client.call("gw_echo", "echo", "down")
    assert excinfo.value.reason == "no instance is running"


def test_requests_to_a_stopped_service_expire_in_the_broker(client, echo, config):
    assert client.call("gw_echo", "echo", "up") == "up"
    echo.stop()
    proxy = PooledProxy(nameko_config(config, "gw_client"), timeout=0.3)
    try:
        with pytest.raises(RpcTimeout):
            proxy.call("gw_echo", "echo", ("never run",), {}, {})
    finally:
        proxy.close()
    with Connection(config["amqp"]["uri"]) as connection:
        channel = connection.channel()
        deadline = time.monotonic() + 5
        while True:
            _queue, messages, consumers = channel.queue_declare("rpc-gw_echo", passive=True)
            if messages == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert consumers == 0
    assert messages == 0  # the request expired instead of waiting for a restart


def test_a_restarted_service_is_seen_at_once(client, container_factory, config, rabbit_vhost):
    first = container_factory(EchoService, nameko_config(config, "gw_echo"))
    first.start()
    assert client.call("gw_echo", "echo", "before") == "before"
    first.stop()
    client.instances._known.clear()  # do not wait out the memory of "it is up"
    with pytest.raises(ServiceUnavailable) as excinfo:
        client.call("gw_echo", "echo", "while down")
    assert excinfo.value.reason == "no instance is running"

    second = container_factory(EchoService, nameko_config(config, "gw_echo"))
    second.start()
    # "No instance" was not remembered: the very next call reaches the new instance.
    assert client.call("gw_echo", "echo", "after") == "after"
