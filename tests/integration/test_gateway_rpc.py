"""The gateway's RPC client on real RabbitMQ: one shared connection, timeouts,
reconnects, breakers, and the Nameko wire protocol beside plain Nameko clients."""

import logging
import shutil
import subprocess
import threading
import time

import eventlet
import pytest
from kombu import Connection
from nameko.contextdata import ContextDataProvider
from nameko.extensions import DependencyProvider
from nameko.standalone.rpc import ClusterRpcProxy

from gateway.rpc import RpcClient, ServiceUnavailable, UpstreamError
from services.chassis.config import nameko_config
from services.chassis.errors import NotFound
from services.chassis.messaging import rpc
from services.chassis.rpc_client import ReplyTimeout
from services.chassis.service import AgoraService
from services.chassis.tracing import B3_KEY, Tracer
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration


class B3(ContextDataProvider):
    context_key = B3_KEY


class CallIdStack(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx.call_id_stack


# Callers of EchoService.meet that have arrived: each waits for the others.
_MET = []
# EchoService.hold answers once this is set.
_RELEASE = threading.Event()


class EchoService(AgoraService):
    name = "gw_echo"
    b3 = B3()
    call_id_stack = CallIdStack()

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

    @rpc
    def broken(self):
        raise ValueError("a bug")

    @rpc
    def context(self):
        return {"b3": self.b3, "call_id_stack": self.call_id_stack}

    @rpc
    def hold(self):
        return _RELEASE.wait(30)

    @rpc
    def meet(self, name, expected):
        """Answers once ``expected`` callers are inside at the same time (or after 2 s)."""
        _MET.append(name)
        deadline = time.monotonic() + 2
        while len(_MET) < expected and time.monotonic() < deadline:
            eventlet.sleep(0.01)
        return len(_MET) >= expected


SETTINGS = {
    "timeout": 0.5,
    "breaker": {"fail_max": 2, "reset_timeout": 30},
}


@pytest.fixture
def client(config, rabbit_vhost):
    # The client against a test service: as the operator, since the gateway's broker
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


def rabbitmqctl(*args):
    return subprocess.run(
        [shutil.which("rabbitmqctl"), "-q", *args], capture_output=True, text=True, check=True
    ).stdout


def close_from_the_broker(client):
    """Close the client's RPC connection from RabbitMQ's side, as an operator would."""
    host, port = client.connection._current()._connection.transport.sock.getsockname()[:2]
    wanted = f"{host}:{port} -> "
    rows = [
        line.split("\t") for line in rabbitmqctl("list_connections", "name", "pid").splitlines()
    ]
    (pid,) = [pid for name, pid in rows if name.startswith(wanted)]
    rabbitmqctl("close_connection", pid, "closed by a test")


def test_threads_sharing_the_connection_get_their_own_replies(client, echo):
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
    # One connection (one reply queue) carried every thread's calls.
    assert client.connection._session is not None
    assert client.connection._session._waiters == {}


def test_business_errors_pass_through_and_do_not_trip_the_breaker(client, echo):
    for _ in range(5):
        with pytest.raises(NotFound) as excinfo:
            client.call("gw_echo", "missing")
    assert excinfo.value.details == {"id": "x"}
    assert client.breaker("gw_echo").current_state == "closed"


def test_a_timeout_is_unavailable_and_its_late_reply_is_dropped(client, echo, caplog):
    caplog.set_level(logging.DEBUG, logger="services.chassis.rpc_client")
    session = client.connection._current()

    def dropped():
        return [r for r in caplog.records if r.getMessage().startswith("dropping a reply")]

    with pytest.raises(ServiceUnavailable) as excinfo:
        client.call("gw_echo", "slow", 1)
    assert "no reply within" in excinfo.value.reason
    # The reply comes after all, and is dropped: nobody waits for it.
    wait_until(dropped, timeout=5, what="the late reply, dropped")
    assert session._waiters == {}
    # The same connection goes on serving calls.
    assert client.call("gw_echo", "echo", "after") == "after"
    assert client.connection._current() is session


def test_a_named_error_arrives_as_itself_and_a_bug_as_upstream_error(client, echo):
    with pytest.raises(NotFound) as excinfo:
        client.call("gw_echo", "missing")
    assert excinfo.value.details == {"id": "x"}
    with pytest.raises(UpstreamError) as excinfo:
        client.call("gw_echo", "broken")
    assert excinfo.value.exc_type == "ValueError"
    client.breaker("gw_echo").close()  # two bugs in a row would open it (fail_max 2)
    with pytest.raises(UpstreamError) as excinfo:
        client.call("gw_echo", "no_such_method")
    assert excinfo.value.exc_type == "MethodNotFound"


def test_calls_made_async_are_in_flight_together(client, echo):
    _MET.clear()
    pending = [client.call_async("gw_echo", "meet", n, 3) for n in range(3)]
    assert [call.result() for call in pending] == [True, True, True]


def test_the_trace_and_call_id_travel_as_nameko_headers(client, echo):
    root = client.tracer.start_root("GET /x")
    try:
        seen = client.call("gw_echo", "context")
    finally:
        root.stop()
    assert seen["b3"].startswith(f"{root.zipkin_attrs.trace_id}-")
    assert seen["b3"].split("-")[1] != root.zipkin_attrs.span_id  # the client span's id
    assert seen["call_id_stack"][0].startswith("gateway.call.")
    assert seen["call_id_stack"][-1].startswith("gw_echo.context.")


def test_a_connection_closed_by_the_broker_fails_calls_in_flight_at_once(config, echo, request):
    # A call that waits for the test, with a timeout longer than rabbitmqctl takes.
    tracer = Tracer("gateway", {**config["tracing"], "sample_rate": 0.0})
    client = RpcClient(nameko_config(config, "gw_client"), {**SETTINGS, "timeout": 60}, tracer)
    request.addfinalizer(client.close)
    _RELEASE.clear()
    request.addfinalizer(_RELEASE.set)
    assert client.call("gw_echo", "echo", "before") == "before"
    first = client.connection._current()
    in_flight = client.call_async("gw_echo", "hold")
    close_from_the_broker(client)
    with pytest.raises(ServiceUnavailable) as excinfo:
        in_flight.result()
    assert excinfo.value.reason.startswith("transport error")
    assert not first.alive
    # The next call opens a new connection with a new reply queue.
    assert client.call("gw_echo", "echo", "after") == "after"
    second = client.connection._current()
    assert second is not first and second.reply_to != first.reply_to


def test_a_plain_nameko_client_works_beside_it(client, echo, config):
    assert client.call("gw_echo", "echo", "shared") == "shared"
    with ClusterRpcProxy(nameko_config(config, "gw_other"), timeout=5) as cluster:
        assert cluster["gw_echo"].echo("plain") == "plain"
        pending = client.call_async("gw_echo", "echo", "both")
        assert cluster["gw_echo"].echo("again") == "again"
        assert pending.result() == "both"


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
    # Straight to the connection: the instance check would not even send it.
    with pytest.raises(ReplyTimeout):
        client.connection.call_async("gw_echo", "echo", ("never run",), {}, {}, 0.3).result()
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
