"""The policy of service-to-service calls (services/chassis/resilience.py), no broker."""

import inspect
import random
from importlib import import_module

import pybreaker
import pytest

from agora.cli import SERVICES
from services.chassis.config import load_config
from services.chassis.errors import (
    BulkheadFull,
    Conflict,
    NotFound,
    ServiceTimeout,
    ServiceUnavailable,
    Unavailable,
    ValidationError,
)
from services.chassis.resilience import (
    Bulkhead,
    CircuitOpen,
    ConcurrentCircuitBreaker,
    backoff_delay,
    client_settings,
    counts_as_failure,
    is_transient,
    should_retry,
)
from services.chassis.service_client import contract_idempotent, outcome_of

pytestmark = pytest.mark.unit

IDEMPOTENT = frozenset({"get_product"})


# --- backoff -----------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_cap_at_the_top_of_the_jitter():
    delays = [backoff_delay(n, 0.1, 1.0, rand=lambda: 1.0) for n in range(1, 7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_full_jitter_reaches_down_to_zero():
    assert backoff_delay(3, 0.1, 1.0, rand=lambda: 0.0) == 0.0
    assert backoff_delay(3, 0.1, 1.0, rand=lambda: 0.5) == pytest.approx(0.2)


def test_jittered_delays_stay_within_zero_and_the_exponential_bound():
    rng = random.Random(7)
    for attempt in range(1, 10):
        bound = min(2.0, 0.05 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, 0.05, 2.0, rand=rng.random) for _ in range(500)]
        assert all(0.0 <= d <= bound for d in delays)
        # spread over the range, not clustered: both halves are used
        assert min(delays) < bound / 4 and max(delays) > bound * 3 / 4


# --- which failures of which methods are retried -----------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        ServiceTimeout("slow", {"service": "catalog"}),
        ServiceUnavailable("down", {"service": "catalog"}),
        Unavailable("the catalog service cannot reach its database"),
    ],
)
def test_an_idempotent_method_is_retried_after_a_transient_failure(exc):
    assert is_transient(exc)
    assert should_retry("get_product", exc, attempt=1, attempts=3, idempotent=IDEMPOTENT)
    assert should_retry("get_product", exc, attempt=2, attempts=3, idempotent=IDEMPOTENT)


def test_no_attempt_beyond_the_last():
    exc = ServiceTimeout("slow")
    assert not should_retry("get_product", exc, attempt=3, attempts=3, idempotent=IDEMPOTENT)
    assert not should_retry("get_product", exc, attempt=1, attempts=1, idempotent=IDEMPOTENT)


def test_a_method_not_declared_idempotent_is_never_retried():
    for exc in (ServiceTimeout("slow"), ServiceUnavailable("down"), Unavailable("db down")):
        assert not should_retry("create_product", exc, 1, 3, IDEMPOTENT)


@pytest.mark.parametrize(
    "exc",
    [
        NotFound("no such product"),
        Conflict("taken"),
        ValidationError("bad", {"x": "y"}),
        BulkheadFull("full", {"service": "catalog"}),
        CircuitOpen("open"),
        RuntimeError("a bug here"),
    ],
)
def test_answers_full_bulkheads_open_circuits_and_local_bugs_are_not_retried(exc):
    assert not is_transient(exc)
    assert not should_retry("get_product", exc, 1, 3, IDEMPOTENT)


def test_a_failure_tagged_not_transient_is_not_retried():
    failed = ServiceUnavailable("the catalog service failed")
    failed.transient = False  # how the client marks a remote bug
    assert not should_retry("get_product", failed, 1, 3, IDEMPOTENT)


# --- what the breaker counts ----------------------------------------------------------


def test_the_breaker_counts_outages_not_refusals():
    assert counts_as_failure(ServiceTimeout("slow"))
    assert counts_as_failure(Unavailable("db down"))
    assert counts_as_failure(ConnectionError("reset"))
    assert not counts_as_failure(NotFound("gone"))
    assert not counts_as_failure(ValidationError("bad"))
    assert not counts_as_failure(KeyboardInterrupt())


def test_the_concurrent_breaker_opens_after_fail_max_and_refuses_at_once():
    breaker = ConcurrentCircuitBreaker(
        fail_max=2,
        reset_timeout=60,
        exclude=[lambda exc: not counts_as_failure(exc)],
        throw_new_error_on_trip=False,
    )

    def fail():
        raise ServiceTimeout("slow")

    def refuse():
        raise NotFound("gone")

    with pytest.raises(ServiceTimeout):
        breaker.call(fail)
    with pytest.raises(NotFound):  # an answer: resets the count
        breaker.call(refuse)
    with pytest.raises(ServiceTimeout):
        breaker.call(fail)
    assert breaker.current_state == pybreaker.STATE_CLOSED
    with pytest.raises(ServiceTimeout):  # the tripping call keeps its own error
        breaker.call(fail)
    assert breaker.current_state == pybreaker.STATE_OPEN
    called = []
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(called.append, 1)
    assert called == []


# --- the bulkhead ----------------------------------------------------------------


def test_the_bulkhead_admits_up_to_its_limit_then_refuses_and_frees_on_release():
    bulkhead = Bulkhead("catalog", 2)
    bulkhead.acquire()
    bulkhead.acquire()
    assert bulkhead.in_flight == 2
    with pytest.raises(BulkheadFull) as refused:
        bulkhead.acquire()
    assert refused.value.details["service"] == "catalog"
    assert bulkhead.in_flight == 2  # a refused call takes no slot
    bulkhead.release()
    bulkhead.acquire()
    assert bulkhead.in_flight == 2


def test_the_bulkhead_frees_its_slot_when_the_call_fails():
    bulkhead = Bulkhead("catalog", 1)
    with pytest.raises(RuntimeError):
        with bulkhead:
            assert bulkhead.in_flight == 1
            raise RuntimeError("the call failed")
    assert bulkhead.in_flight == 0
    with bulkhead:
        assert bulkhead.in_flight == 1


# --- settings ---------------------------------------------------------------------


def test_a_downstream_takes_its_overrides_over_the_defaults_key_by_key():
    rpc_clients = {
        "default": {
            "timeout": 1.5,
            "retries": 2,
            "backoff_base": 0.1,
            "backoff_max": 1.0,
            "max_concurrent": 8,
            "breaker": {"fail_max": 5, "reset_timeout": 10},
        },
        "catalog": {"timeout": 0.5, "breaker": {"fail_max": 2}},
    }
    catalog = client_settings(rpc_clients, "catalog")
    assert catalog["timeout"] == 0.5 and catalog["retries"] == 2
    assert catalog["breaker"] == {"fail_max": 2, "reset_timeout": 10}
    assert client_settings(rpc_clients, "users") == rpc_clients["default"]


def test_the_configured_budget_fits_within_the_gateways_timeout():
    """orders asks the catalog while the gateway waits for orders: every attempt
    and the longest backoff must end before the gateway gives up."""
    for environment in ("development", "test"):
        config = load_config({"AGORA_ENV": environment})
        gateway_timeout = config["gateway"]["rpc"]["timeout"]
        for downstream in ("catalog", "users", "orders"):
            settings = client_settings(config["rpc_clients"], downstream)
            attempts = settings["retries"] + 1
            backoff = sum(
                backoff_delay(n, settings["backoff_base"], settings["backoff_max"], lambda: 1.0)
                for n in range(1, attempts)
            )
            assert settings["timeout"] * attempts + backoff < gateway_timeout, environment


# --- idempotency is the callee's contract --------------------------------------------


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_declared_idempotent_method_is_a_real_rpc_method_of_its_service(name):
    module, _, attribute = SERVICES[name].partition(":")
    cls = getattr(import_module(module), attribute)
    declared = contract_idempotent(name)
    assert "health" in declared
    rpc_methods = {
        attr
        for attr, value in inspect.getmembers(cls)
        if any(type(e).__name__ == "Rpc" for e in getattr(value, "nameko_entrypoints", ()))
    }
    assert declared <= rpc_methods, declared - rpc_methods


def test_writes_are_not_declared_idempotent():
    assert "create_order" not in contract_idempotent("orders")
    assert "issue_verification" not in contract_idempotent("users")
    assert "get_product" in contract_idempotent("catalog")
    assert contract_idempotent("no_such_service") == frozenset()


def test_each_failure_has_its_metric_outcome():
    unreachable = ServiceUnavailable("x")
    unreachable.outcome = "unavailable"
    assert outcome_of(BulkheadFull("x")) == "bulkhead_full"
    assert outcome_of(CircuitOpen("x")) == "breaker_open"
    assert outcome_of(ServiceTimeout("x")) == "timeout"
    assert outcome_of(unreachable) == "unavailable"
    assert outcome_of(NotFound("x")) == "error"
