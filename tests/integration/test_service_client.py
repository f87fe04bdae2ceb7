"""ServiceClient between two real services on RabbitMQ: retries, breaker, bulkhead."""

import copy
from collections import Counter

import eventlet
import pytest
from eventlet.event import Event
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.services import entrypoint_hook
from prometheus_client import REGISTRY

from services.chassis.config import nameko_config
from services.chassis.errors import (
    BulkheadFull,
    NotFound,
    ServiceTimeout,
    ServiceUnavailable,
    Unavailable,
)
from services.chassis.messaging import rpc
from services.chassis.service import AgoraService
from services.chassis.service_client import ServiceClient
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

# Durable RPC queues of stopped test services must not meet other modules'.
OWN_VHOST = True

FRONT, BACKEND = "resilience_front", "resilience_backend"

calls = Counter()  # (method, key) -> times the backend ran it
held = []  # keys of the hold() calls in progress
release = Event()  # ends every hold(); a new one per test (the platform fixture)


class BackendService(AgoraService):
    name = BACKEND

    @rpc
    def flaky_read(self, key):
        """Unavailable on its first call per key (its database "down"), then answers."""
        calls["flaky_read", key] += 1
        if calls["flaky_read", key] == 1:
            raise Unavailable("the backend cannot reach its database")
        return {"key": key, "calls": calls["flaky_read", key]}

    @rpc
    def slow_read(self, key, seconds):
        """Slower than the client's timeout on its first call per key."""
        calls["slow_read", key] += 1
        if calls["slow_read", key] == 1:
            eventlet.sleep(seconds)
        return key

    @rpc
    def write(self, key, seconds=0):
        """Not idempotent: fails (Unavailable) or takes ``seconds`` on its first call."""
        calls["write", key] += 1
        if seconds:
            eventlet.sleep(seconds)
            calls["write done", key] += 1
        elif calls["write", key] == 1:
            raise Unavailable("the backend cannot reach its database")
        return key

    @rpc
    def missing(self, key):
        raise NotFound("no such thing", {"key": key})

    @rpc
    def hold(self, key):
        calls["hold", key] += 1
        held.append(key)
        release.wait()
        held.remove(key)
        return key


class FrontService(AgoraService):
    name = FRONT
    backend = ServiceClient(BACKEND, idempotent={"flaky_read", "slow_read", "missing", "health"})

    @rpc
    def ask(self, method, *args):
        return getattr(self.backend, method)(*args)


def sample(name, method, **labels):
    value = REGISTRY.get_sample_value(
        name, {"service": FRONT, "downstream": BACKEND, "method": method, **labels}
    )
    return value or 0.0


def outcomes(method, outcome):
    return sample("agora_rpc_client_calls_total", method, outcome=outcome)


def retries(method):
    return sample("agora_rpc_client_retries_total", method)


def breaker_state():
    return REGISTRY.get_sample_value(
        "agora_rpc_client_breaker_state", {"service": FRONT, "downstream": BACKEND}
    )


@pytest.fixture
def settings(config, rabbit_vhost):
    """``settings(name, **client)``: the Nameko config of ``name``, with the client
    to the backend overridden by ``client`` (rpc_clients keys)."""

    def build(name, **client):
        built = copy.deepcopy(nameko_config(config, name))
        built["max_workers"] = 10
        built["AGORA"]["rpc_clients"][BACKEND] = client
        return built

    return build


@pytest.fixture
def platform(container_factory, settings):
    """``platform(**client)``: a started backend and front; returns (front, backend)."""
    global release
    release = Event()

    def start(**client):
        backend = container_factory(BackendService, settings(BACKEND))
        backend.start()
        front = container_factory(FrontService, settings(FRONT, **client))
        front.start()
        return front, backend

    yield start
    if not release.ready():
        release.send(True)  # let any held call end, so the containers stop


def ask(front, method, *args):
    with entrypoint_hook(front, "ask") as hook:
        return hook(method, *args)


def test_an_idempotent_method_is_retried_and_succeeds_after_a_transient_failure(platform):
    front, _ = platform(retries=2, backoff_base=0.01, backoff_max=0.05)
    before_retries, before_ok = retries("flaky_read"), outcomes("flaky_read", "ok")

    assert ask(front, "flaky_read", "k1") == {"key": "k1", "calls": 2}

    assert calls["flaky_read", "k1"] == 2
    assert retries("flaky_read") == before_retries + 1
    assert outcomes("flaky_read", "ok") == before_ok + 1


def test_an_idempotent_read_that_timed_out_is_asked_again(platform):
    front, _ = platform(timeout=0.3, retries=1, backoff_base=0.01, backoff_max=0.05)
    before = outcomes("slow_read", "ok")

    assert ask(front, "slow_read", "k2", 2.0) == "k2"

    assert calls["slow_read", "k2"] == 2
    assert outcomes("slow_read", "ok") == before + 1


def test_a_method_not_declared_idempotent_is_never_retried(platform):
    front, _ = platform(timeout=0.3, retries=3, backoff_base=0.01, backoff_max=0.05)
    before_retries = retries("write")
    before_error, before_timeout = outcomes("write", "error"), outcomes("write", "timeout")

    with pytest.raises(Unavailable):  # the backend's own answer, passed on
        ask(front, "write", "w1")
    with pytest.raises(ServiceTimeout) as timed_out:
        ask(front, "write", "w2", 1.0)
    assert timed_out.value.details["service"] == BACKEND

    # The timed-out write did run, once: it finishes after the caller gave up.
    wait_until(lambda: calls["write done", "w2"] == 1, what="the slow write to finish")
    assert calls["write", "w1"] == 1 and calls["write", "w2"] == 1
    assert retries("write") == before_retries
    assert outcomes("write", "error") == before_error + 1
    assert outcomes("write", "timeout") == before_timeout + 1


def test_a_refusal_is_an_answer_neither_retried_nor_counted_by_the_breaker(platform):
    front, _ = platform(retries=2, breaker={"fail_max": 1, "reset_timeout": 60})
    before = retries("missing")
    for _ in range(3):
        with pytest.raises(NotFound):
            ask(front, "missing", "m1")
    assert retries("missing") == before
    assert breaker_state() == 0


def test_a_stopped_downstream_opens_the_breaker_then_calls_fail_fast_until_it_is_back(
    platform, container_factory, settings
):
    # reset_timeout long enough that the breaker is still open for the refused
    # call on a loaded machine (at 0.5 s it was half-open by then in one CI run).
    front, backend = platform(timeout=0.3, retries=0, breaker={"fail_max": 2, "reset_timeout": 3})
    assert ask(front, "write", "up", 0.01) == "up"
    backend.stop()  # its queue stays: calls wait there unanswered, then expire
    before_open = outcomes("write", "breaker_open")

    for _ in range(2):
        with pytest.raises(ServiceTimeout):
            ask(front, "write", "down", 0.01)
    assert breaker_state() == 2  # open
    with pytest.raises(ServiceUnavailable) as refused:
        ask(front, "write", "refused", 0.01)
    assert not isinstance(refused.value, ServiceTimeout)
    assert refused.value.details == {"service": BACKEND, "reason": "circuit open"}
    assert outcomes("write", "breaker_open") == before_open + 1
    assert calls["write", "refused"] == 0  # never sent

    container_factory(BackendService, settings(BACKEND)).start()

    def answered():
        try:
            return ask(front, "write", "back", 0.01)
        except ServiceUnavailable:
            return None

    assert wait_until(answered, what="the backend to answer again") == "back"
    assert breaker_state() == 0


def test_the_bulkhead_refuses_the_call_over_the_cap_at_once(platform, settings):
    front, _ = platform(timeout=10.0, max_concurrent=2)
    before = outcomes("hold", "bulkhead_full")

    # Calls that overlap go over the broker (an entrypoint hook answers whichever
    # call of its entrypoint ends first), each with its own reply.
    with ClusterRpcProxy(settings("tests"), timeout=20) as cluster:
        holding = [cluster[FRONT].ask.call_async("hold", key) for key in ("h1", "h2")]
        wait_until(lambda: sorted(held) == ["h1", "h2"], what="two calls in flight")

        with pytest.raises(BulkheadFull) as refused:
            cluster[FRONT].ask("hold", "h3")
        assert refused.value.details["service"] == BACKEND
        assert calls["hold", "h3"] == 0  # never sent
        assert outcomes("hold", "bulkhead_full") == before + 1

        release.send(True)
        assert sorted(call.result() for call in holding) == ["h1", "h2"]
    # The slots are free again.
    assert ask(front, "flaky_read", "after") == {"key": "after", "calls": 2}
