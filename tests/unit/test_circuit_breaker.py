"""The gateway's circuit breaker: pybreaker's states, with calls that overlap."""

import threading
import time

import pybreaker
import pytest

from gateway.rpc import ConcurrentCircuitBreaker, _is_business_error
from services.chassis.errors import NotFound

pytestmark = pytest.mark.unit


def breaker(fail_max=3, reset_timeout=60):
    return ConcurrentCircuitBreaker(
        fail_max=fail_max, reset_timeout=reset_timeout, exclude=[_is_business_error]
    )


def test_calls_through_one_breaker_run_at_the_same_time():
    guard = breaker()
    # Each call waits until all four are inside: only possible if none holds a lock.
    barrier = threading.Barrier(4, timeout=5)
    results = []

    def call(n):
        results.append(guard.call(lambda: barrier.wait() is not None and n))

    threads = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1, 2, 3]
    assert guard.current_state == pybreaker.STATE_CLOSED


def test_failures_open_the_circuit_and_then_calls_are_refused_without_running():
    guard = breaker(fail_max=3)
    calls = []

    def failing():
        calls.append(1)
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            guard.call(failing)
    with pytest.raises(pybreaker.CircuitBreakerError):
        guard.call(failing)  # the third failure trips it
    assert guard.current_state == pybreaker.STATE_OPEN
    with pytest.raises(pybreaker.CircuitBreakerError):
        guard.call(failing)
    assert len(calls) == 3


def test_business_errors_pass_through_and_do_not_count():
    guard = breaker(fail_max=2)

    def not_found():
        raise NotFound("no such order")

    for _ in range(5):
        with pytest.raises(NotFound):
            guard.call(not_found)
    assert guard.current_state == pybreaker.STATE_CLOSED
    assert guard.fail_counter == 0


def test_a_success_resets_the_failure_count():
    guard = breaker(fail_max=2)
    with pytest.raises(ConnectionError):
        guard.call(lambda: (_ for _ in ()).throw(ConnectionError("down")))
    assert guard.call(lambda: "ok") == "ok"
    assert guard.fail_counter == 0


def test_after_the_reset_timeout_one_trial_call_closes_it_again():
    guard = breaker(fail_max=1, reset_timeout=0.2)
    with pytest.raises(pybreaker.CircuitBreakerError):
        guard.call(lambda: (_ for _ in ()).throw(ConnectionError("down")))
    with pytest.raises(pybreaker.CircuitBreakerError):
        guard.call(lambda: "refused")
    time.sleep(0.25)
    assert guard.call(lambda: "trial") == "trial"
    assert guard.current_state == pybreaker.STATE_CLOSED
    assert guard.call(lambda: "normal") == "normal"


def test_a_failed_trial_call_opens_it_again():
    guard = breaker(fail_max=1, reset_timeout=0.2)
    with pytest.raises(pybreaker.CircuitBreakerError):
        guard.call(lambda: (_ for _ in ()).throw(ConnectionError("down")))
    time.sleep(0.25)
    with pytest.raises(pybreaker.CircuitBreakerError):
        guard.call(lambda: (_ for _ in ()).throw(ConnectionError("still down")))
    assert guard.current_state == pybreaker.STATE_OPEN
