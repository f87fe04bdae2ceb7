"""The policy of a call to another service, apart from any transport.

* ``client_settings``: one downstream's settings, ``rpc_clients.<service>``
  over ``rpc_clients.default``;
* ``backoff_delay``: exponential backoff with full jitter;
* ``should_retry``: which failures of which methods are tried again;
* ``Bulkhead``: a cap on the calls in flight to one downstream, refusing at once;
* ``ConcurrentCircuitBreaker``: pybreaker's breaker whose guarded calls overlap.

``services.chassis.service_client`` puts them together for Nameko services;
everything here is plain Python, so unit tests need no broker.
"""

import random
import threading

import pybreaker

from services.chassis.errors import AgoraError, BulkheadFull, Unavailable

DEFAULT = "default"


def client_settings(rpc_clients, downstream):
    """``rpc_clients.<downstream>`` over ``rpc_clients.default``; the breaker
    section merges key by key too."""
    default = rpc_clients[DEFAULT]
    override = rpc_clients.get(downstream) or {}
    merged = {**default, **override}
    merged["breaker"] = {**default["breaker"], **(override.get("breaker") or {})}
    return merged


def backoff_delay(attempt, base, cap, rand=random.random):
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...):
    uniform in [0, min(cap, base * 2^(attempt-1))] ("full jitter"), so callers
    that failed together do not come back together."""
    return rand() * min(cap, base * (2 ** max(attempt - 1, 0)))


def is_transient(exc):
    """A failure another attempt may not meet: no answer in time, the broker or
    the downstream unreachable, or the downstream answering ``Unavailable`` (its
    own database or cache down). Refusals (not found, conflict, validation) are
    answers, and a full bulkhead or an open circuit must not be pushed harder.
    A failure the client tagged ``transient = False`` (the downstream failing
    unexpectedly: a bug is not cured by asking again) is not either."""
    if isinstance(exc, (BulkheadFull, CircuitOpen)) or not getattr(exc, "transient", True):
        return False
    return isinstance(exc, Unavailable)


def should_retry(method, exc, attempt, attempts, idempotent):
    """Whether a call of ``method`` that failed with ``exc`` on attempt number
    ``attempt`` of ``attempts`` is tried again. Only methods the callee declared
    idempotent are: a timed-out call may have run, and running a write twice is
    the callee's to allow."""
    return attempt < attempts and method in idempotent and is_transient(exc)


def counts_as_failure(exc):
    """What the circuit breaker counts: anything but a refusal the downstream
    answered with (an ``AgoraError`` other than ``Unavailable``)."""
    if not isinstance(exc, Exception):
        return False  # the worker being killed says nothing of the downstream
    return not isinstance(exc, AgoraError) or isinstance(exc, Unavailable)


class CircuitOpen(Unavailable):
    """Raised inside the client when the downstream's circuit is open (turned
    into ``ServiceUnavailable`` for the caller); never sent over the wire."""


class Bulkhead:
    """At most ``limit`` calls in flight to one downstream; one more is refused
    at once (``BulkheadFull``) instead of queueing behind a slow service."""

    def __init__(self, downstream, limit):
        self.downstream = downstream
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    def acquire(self):
        with self._lock:
            if self.in_flight >= self.limit:
                raise BulkheadFull(
                    f"too many calls in flight to the {self.downstream} service",
                    {"service": self.downstream, "reason": f"{self.limit} calls in flight"},
                )
            self.in_flight += 1

    def release(self):
        with self._lock:
            self.in_flight -= 1

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()


class ConcurrentCircuitBreaker(pybreaker.CircuitBreaker):
    """A breaker whose guarded calls overlap.

    pybreaker 1.4 holds the breaker's lock for the whole guarded call, so every
    call to one downstream would wait for the one before it. Here the lock only
    guards reading and updating the state; a call in the closed state runs
    unlocked. Open and half-open keep pybreaker's behaviour: refused at once,
    or one trial call at a time.
    """

    def call(self, func, *args, **kwargs):
        with self._lock:
            state = self.state
            if state.name != pybreaker.STATE_CLOSED:
                return state.call(func, *args, **kwargs)
            for listener in self.listeners:
                listener.before_call(self, func, *args, **kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            with self._lock:
                state._handle_error(exc)  # re-raises it, or CircuitBreakerError if it tripped
            raise  # not reached: _handle_error always raises
        with self._lock:
            state._handle_success()
        return result


# The breaker_state gauges' values.
BREAKER_STATE_VALUES = {
    pybreaker.STATE_CLOSED: 0,
    pybreaker.STATE_HALF_OPEN: 1,
    pybreaker.STATE_OPEN: 2,
}
