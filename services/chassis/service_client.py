"""``ServiceClient``: how a service calls another one.

    class OrdersService(AgoraService):
        catalog = ServiceClient("catalog")
        ...
        product = self.catalog.get_product(product_id)

Every call, per downstream service and per process, goes through:

* a bulkhead: at most ``max_concurrent`` calls in flight to that service; one
  more fails at once with ``BulkheadFull`` rather than waiting for a slot;
* a circuit breaker (``breaker.fail_max`` failures in a row open it for
  ``breaker.reset_timeout`` s; then one trial call): while it is open, calls
  fail at once with ``ServiceUnavailable``. Refusals the downstream answers
  (not found, conflict, validation) are answers, not failures;
* a timeout per attempt (``ServiceTimeout``); the request also expires in the
  broker then, so a stopped service does not find a backlog when it returns;
* retries with exponential backoff and full jitter (``retries``,
  ``backoff_base``, ``backoff_max``), for the methods the callee declares
  idempotent only, and only after a transient failure (a timeout, an
  unreachable broker or service, the callee answering ``Unavailable``).

Idempotency is the callee's to declare, in its contract:
``services/<name>/schemas.py`` ``IDEMPOTENT_RPC``, a frozenset of method names
(reads, and writes keyed so that a second call changes nothing). The client
reads it from there; a service outside ``services/`` (a test's) passes
``idempotent=`` itself. A method not listed is never retried: a call that timed
out may have run.

Every failure is an ``Unavailable`` (``services.chassis.errors``): an RPC
entrypoint sends it on to its caller (503 at the gateway), an event handler's
event is retried with backoff. Settings: ``rpc_clients.<service>`` over
``rpc_clients.default`` (config/agora.yaml). Each attempt is a client span and
carries the B3 context. Metrics: ``agora_rpc_client_*``.
"""

import importlib
import logging
import time

import eventlet
import pybreaker
from kombu.exceptions import OperationalError
from nameko.exceptions import RemoteError, UnknownService
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.rpc import MethodProxy, ReplyListener
from prometheus_client import Counter, Gauge, Histogram

from services.chassis.errors import AgoraError, BulkheadFull, ServiceTimeout, ServiceUnavailable
from services.chassis.resilience import (
    BREAKER_STATE_VALUES,
    Bulkhead,
    CircuitOpen,
    ConcurrentCircuitBreaker,
    backoff_delay,
    client_settings,
    counts_as_failure,
    should_retry,
)
from services.chassis.tracing import B3_KEY

log = logging.getLogger(__name__)

CALLS = Counter(
    "agora_rpc_client_calls_total",
    "Calls to another service, by final outcome (after retries).",
    ["service", "downstream", "method", "outcome"],
)
DURATION = Histogram(
    "agora_rpc_client_call_duration_seconds",
    "Time a call to another service took, retries and backoff included.",
    ["service", "downstream", "method"],
)
RETRIES = Counter(
    "agora_rpc_client_retries_total",
    "Calls to another service tried again after a transient failure.",
    ["service", "downstream", "method"],
)
BREAKER_STATE = Gauge(
    "agora_rpc_client_breaker_state",
    "The circuit to another service: 0 closed, 1 half-open, 2 open.",
    ["service", "downstream"],
)


def contract_idempotent(service):
    """``IDEMPOTENT_RPC`` from ``services.<service>.schemas``; empty if there is none."""
    try:
        contract = importlib.import_module(f"services.{service}.schemas")
    except ModuleNotFoundError:
        return frozenset()
    return frozenset(getattr(contract, "IDEMPOTENT_RPC", ()))


def outcome_of(exc):
    """The ``outcome`` label of a call that failed with ``exc``."""
    if isinstance(exc, BulkheadFull):
        return "bulkhead_full"
    if isinstance(exc, CircuitOpen):
        return "breaker_open"
    if isinstance(exc, ServiceTimeout):
        return "timeout"
    return getattr(exc, "outcome", "error")


def _unavailable(service, message, reason, outcome, transient=True):
    """A ``ServiceUnavailable`` (registered, so it crosses RPC as itself) tagged
    with its metric outcome and whether another attempt may help."""
    exc = ServiceUnavailable(message, {"service": service, "reason": reason})
    exc.outcome = outcome
    exc.transient = transient
    return exc


class _BreakerListener(pybreaker.CircuitBreakerListener):
    def __init__(self, gauge):
        self.gauge = gauge

    def state_change(self, cb, old_state, new_state):
        name = new_state.name if new_state is not None else pybreaker.STATE_CLOSED
        self.gauge.set(BREAKER_STATE_VALUES[name])
        level = logging.WARNING if name != pybreaker.STATE_CLOSED else logging.INFO
        log.log(level, "circuit to %s is now %s", cb.name, name)


class Downstream:
    """One downstream service, as seen from this process: its settings,
    idempotent methods, breaker and bulkhead."""

    def __init__(self, service, downstream, settings, idempotent):
        self.service = service
        self.name = downstream
        self.settings = settings
        self.idempotent = frozenset(idempotent)
        self.bulkhead = Bulkhead(downstream, settings["max_concurrent"])
        gauge = BREAKER_STATE.labels(service, downstream)
        gauge.set(0)
        self.breaker = ConcurrentCircuitBreaker(
            fail_max=settings["breaker"]["fail_max"],
            reset_timeout=settings["breaker"]["reset_timeout"],
            exclude=[lambda exc: not counts_as_failure(exc)],
            listeners=[_BreakerListener(gauge)],
            throw_new_error_on_trip=False,
            name=downstream,
        )

    @property
    def attempts(self):
        return 1 + self.settings["retries"]

    def retry_delay(self, attempt):
        return backoff_delay(attempt, self.settings["backoff_base"], self.settings["backoff_max"])


class Downstreams(SharedExtension):
    """Per container (one per process: ``services.chassis.runner``): a ``Downstream``
    per service called, however many ``ServiceClient`` name it."""

    def __init__(self):
        super().__init__()
        # Here, not in setup(): a ServiceClient's setup may run before this one's.
        self.downstreams = {}

    def get(self, downstream, idempotent):
        found = self.downstreams.get(downstream)
        if found is None:
            settings = client_settings(self.container.config["AGORA"]["rpc_clients"], downstream)
            found = Downstream(self.container.service_name, downstream, settings, idempotent)
            self.downstreams[downstream] = found
        return found


class ServiceClient(DependencyProvider):
    """``ServiceClient("catalog")``: ``self.catalog.get_product(product_id)``.

    ``idempotent``: the downstream's methods that may be retried; by default
    its contract's ``IDEMPOTENT_RPC`` (``services/<name>/schemas.py``)."""

    reply_listener = ReplyListener()
    downstreams = Downstreams()

    def __init__(self, target_service, idempotent=None):
        self.target_service = target_service
        self.idempotent = idempotent

    def setup(self):
        idempotent = self.idempotent
        if idempotent is None:
            idempotent = contract_idempotent(self.target_service)
        self.downstream = self.downstreams.get(self.target_service, idempotent)

    def get_dependency(self, worker_ctx):
        from services.chassis.service import process_tracer

        return _Calls(self, worker_ctx, process_tracer(self.container))


class _Calls:
    """What a worker gets: ``.method(*args, **kwargs)`` calls the downstream."""

    def __init__(self, provider, worker_ctx, tracer):
        self._provider = provider
        self._worker_ctx = worker_ctx
        self._tracer = tracer

    def __getattr__(self, method):
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args, **kwargs):
            return self._call(method, args, kwargs)

        call.__name__ = method
        return call

    def _call(self, method, args, kwargs):
        downstream = self._provider.downstream
        labels = (downstream.service, downstream.name, method)
        started = time.monotonic()
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    result = self._attempt(downstream, method, args, kwargs)
                    break
                except Exception as exc:
                    if not should_retry(
                        method, exc, attempt, downstream.attempts, downstream.idempotent
                    ):
                        raise
                    RETRIES.labels(*labels).inc()
                    delay = downstream.retry_delay(attempt)
                    log.info(
                        "%s.%s failed (%s), attempt %d of %d; again in %.2fs",
                        downstream.name,
                        method,
                        exc.__class__.__name__,
                        attempt,
                        downstream.attempts,
                        delay,
                    )
                    eventlet.sleep(delay)
        except CircuitOpen as exc:
            CALLS.labels(*labels, "breaker_open").inc()
            raise ServiceUnavailable(str(exc), exc.details) from None
        except Exception as exc:
            CALLS.labels(*labels, outcome_of(exc)).inc()
            raise
        finally:
            DURATION.labels(*labels).observe(time.monotonic() - started)
        CALLS.labels(*labels, "ok").inc()
        return result

    def _attempt(self, downstream, method, args, kwargs):
        with downstream.bulkhead:
            try:
                return downstream.breaker.call(self._send, downstream, method, args, kwargs)
            except pybreaker.CircuitBreakerError:
                raise CircuitOpen(
                    f"the {downstream.name} service is failing: its circuit is open",
                    {"service": downstream.name, "reason": "circuit open"},
                ) from None

    def _send(self, downstream, method, args, kwargs):
        """One attempt: a client span, the request (expiring with the timeout) and
        its reply, all within the timeout."""
        name, timeout = downstream.name, downstream.settings["timeout"]
        worker_ctx = self._worker_ctx
        with self._tracer.client_span(f"rpc {name}.{method}") as b3:
            previous = worker_ctx.data.get(B3_KEY)
            if b3:
                worker_ctx.data[B3_KEY] = b3
            reply = None
            deadline = eventlet.Timeout(timeout)
            try:
                proxy = MethodProxy(
                    worker_ctx, name, method, self._provider.reply_listener, expiration=timeout
                )
                reply = proxy.call_async(*args, **kwargs)
                return reply.result()
            except eventlet.Timeout as exc:
                if exc is not deadline:
                    raise  # a caller's own timeout around this call
                raise ServiceTimeout(
                    f"the {name} service did not answer {method} within {timeout}s",
                    {"service": name, "reason": f"no reply within {timeout}s"},
                ) from None
            except AgoraError:
                raise
            except UnknownService:
                raise _unavailable(
                    name,
                    f"no instance of the {name} service has ever started",
                    "unknown service",
                    "unavailable",
                ) from None
            except (OperationalError, OSError) as exc:
                raise _unavailable(
                    name,
                    f"the {name} service cannot be reached: {exc.__class__.__name__}",
                    "broker unreachable",
                    "unavailable",
                ) from exc
            except RemoteError as exc:
                # A bug on either side (an unexpected error there, an unknown
                # method or signature): it answered, but not with its contract.
                log.error("%s.%s failed unexpectedly: %s", name, method, exc.exc_type)
                raise _unavailable(
                    name,
                    f"the {name} service failed",
                    f"unexpected error: {exc.exc_type}",
                    "error",
                    transient=False,
                ) from None
            finally:
                deadline.cancel()
                if reply is not None and reply.resp_body is None:
                    self._forget(reply)
                if previous is None:
                    worker_ctx.data.pop(B3_KEY, None)
                else:
                    worker_ctx.data[B3_KEY] = previous

    def _forget(self, reply):
        """Nobody waits for this reply any more: the reply listener drops its slot
        (a reply that still comes is then logged and dropped)."""
        events = self._provider.reply_listener._reply_events
        for correlation_id, event in list(events.items()):
            if event is reply.reply_event:
                events.pop(correlation_id, None)
                return
