"""Calling the services from the gateway: shared, circuit-broken, traced RPC.

Every thread of a gateway process calls through one AMQP connection
(``services.chassis.rpc_client.RpcConnection``: one reply thread hands each
reply to its caller by correlation id). ``call`` waits for its answer;
``call_async`` publishes at once and answers on ``result()``, so one request
can ask several services at the same time without a thread per call.

Each service sits behind its own pybreaker breaker (in-process state): a
timeout, a missing service or a transport error counts as a failure; a named
business error (``AgoraError``: not found, conflict, validation) is an answer,
not a failure.
"""

import logging
import math
import threading
import time

import pybreaker
from amqp.exceptions import NotFound
from kombu import Connection
from nameko.exceptions import BadRequest, RemoteError

from gateway import metrics
from services.chassis.errors import AgoraError
from services.chassis.resilience import ConcurrentCircuitBreaker
from services.chassis.rpc_client import (
    BrokerUnreachable,
    ConnectionLost,
    ReplyTimeout,
    RpcConnection,
)
from services.chassis.tracing import B3_KEY

log = logging.getLogger(__name__)


class ServiceUnavailable(Exception):
    """The service cannot answer now; the client may retry after ``retry_after`` s.

    ``outcome`` is how the call counts in ``agora_gateway_rpc_calls_total``:
    ``unavailable``, ``timeout`` or ``breaker_open``."""

    def __init__(self, service, reason, retry_after=1, outcome=metrics.UNAVAILABLE):
        super().__init__(f"{service} is unavailable ({reason})")
        self.service = service
        self.reason = reason
        self.retry_after = retry_after
        self.outcome = outcome


class UpstreamError(Exception):
    """The service failed in an unexpected way (a bug, not bad input)."""

    def __init__(self, service, exc_type):
        super().__init__(f"{service} failed ({exc_type})")
        self.service = service
        self.exc_type = exc_type


class InstanceCheck:
    """Whether a service has a running instance, known to within ``ttl`` seconds.

    Nameko's ``rpc-<service>`` queue is durable and outlives the service, so a
    call to a stopped service would only time out. A passive declare tells
    how many consumers the queue has. Only "yes" is remembered (for ``ttl``),
    so the broker sees about one check per service per ``ttl`` per process
    while the service is up; "no" is asked again on the next call, so a
    restarted service is seen at once (while it is down, its open breaker
    keeps calls, and so checks, away).
    """

    def __init__(self, amqp_uri, ttl=1.0, timeout=2.0):
        self._uri = amqp_uri
        self._ttl = ttl
        self._timeout = timeout
        self._lock = threading.Lock()
        self._connection = None
        self._channel = None
        self._known = {}

    def has_instance(self, service):
        now = time.monotonic()
        known = self._known.get(service)
        if known is not None and now - known[0] < self._ttl:
            return known[1]
        with self._lock:
            try:
                channel = self._open_channel()
                _queue, _messages, consumers = channel.queue_declare(f"rpc-{service}", passive=True)
                answer = consumers > 0
            except NotFound:
                self._channel = None  # the broker closes the channel on a 404
                answer = False
            except Exception as exc:
                # Cannot tell: let the call itself find out.
                log.debug("instance check for %s failed: %s", service, exc)
                self.close()
                return True
            if answer:
                self._known[service] = (now, answer)
            else:
                self._known.pop(service, None)
            return answer

    def queue_state(self, queue):
        """``(messages ready, consumers)`` of ``queue`` now (a passive declare),
        None if it does not exist; raises if the broker cannot be reached."""
        with self._lock:
            try:
                _queue, messages, consumers = self._open_channel().queue_declare(
                    queue, passive=True
                )
            except NotFound:
                self._channel = None  # the broker closes the channel on a 404
                return None
            except Exception:
                self.close()
                raise
        return messages, consumers

    def _open_channel(self):
        if self._connection is None or not self._connection.connected:
            self._connection = Connection(self._uri, connect_timeout=self._timeout)
            self._connection.connect()
            self._channel = None
        if self._channel is None or not self._channel.is_open:
            self._channel = self._connection.channel()
        return self._channel

    def ping(self):
        """Raise unless RabbitMQ answers a round trip now (a passive declare of
        Nameko's RPC exchange on this check's long-lived connection)."""
        with self._lock:
            try:
                self._open_channel().exchange_declare("nameko-rpc", "topic", passive=True)
            except NotFound:
                self._channel = None  # it answered: no service has declared it yet
            except Exception:
                self.close()
                raise

    def close(self):
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                log.debug("error closing instance-check connection", exc_info=True)


class _OpenedAt(pybreaker.CircuitBreakerListener):
    def __init__(self):
        self.opened_at = 0.0

    def state_change(self, cb, old_state, new_state):
        if new_state is not None and new_state.name == pybreaker.STATE_OPEN:
            self.opened_at = time.monotonic()
            log.warning("circuit opened for %s", cb.name)
        elif new_state is not None and new_state.name == pybreaker.STATE_CLOSED:
            log.info("circuit closed for %s", cb.name)


def _is_business_error(exc):
    return isinstance(exc, AgoraError)


def call_outcome(exc):
    """How a call that ended with ``exc`` (None: it succeeded) counts in
    ``agora_gateway_rpc_calls_total``."""
    if exc is None:
        return metrics.OK
    if isinstance(exc, pybreaker.CircuitBreakerError):
        # The call whose failure trips the breaker raises this too, over its own error.
        cause = exc.__context__
        return metrics.BREAKER_OPEN if cause is None else call_outcome(cause)
    if isinstance(exc, ServiceUnavailable):
        return exc.outcome
    return metrics.ERROR


class PendingCall:
    """One call of ``RpcClient.call_async``: published at once, answered by ``result()``.

    While the service's circuit is not closed nothing is published up front:
    the breaker decides at ``result()`` (refused, or the one trial call of a
    half-open circuit). Every outcome is counted by the breaker there. Call
    ``result()`` once, in the thread that made the call (its client span ends
    there); a call never waited for costs its reply only (dropped on arrival).
    """

    __slots__ = (
        "_client",
        "_service",
        "_method",
        "_call",
        "_breaker",
        "_span",
        "_reply",
        "_error",
        "_started",
    )

    def __init__(self, client, service, method, args, kwargs):
        self._client = client
        self._service = service
        self._method = method
        self._breaker = client.breaker(service)
        self._started = time.perf_counter()
        self._span, b3 = client.tracer.start_client_span(f"rpc {service}.{method}")
        self._call = (args, kwargs, {B3_KEY: b3} if b3 else {})
        self._reply = self._error = None
        if self._breaker.current_state == pybreaker.STATE_CLOSED:
            try:
                self._reply = client._publish(service, method, *self._call)
            except ServiceUnavailable as exc:
                self._error = exc

    def result(self):
        error = outcome = None
        try:
            return self._breaker.call(self._finish)
        except pybreaker.CircuitBreakerError as exc:
            outcome = call_outcome(exc)  # refused, or this call's failure tripped it
            error = ServiceUnavailable(
                self._service,
                "circuit open",
                self._client._retry_after(self._breaker),
                outcome=metrics.BREAKER_OPEN,
            )
            raise error from None
        except BaseException as exc:
            error = exc
            raise
        finally:
            outcome = outcome or call_outcome(error)
            self._client._record(self._service, self._method, outcome, self._started)
            self._client.tracer.finish_client_span(self._span, error)

    def _finish(self):
        if self._error is not None:
            raise self._error
        reply = self._reply
        if reply is None:  # the circuit was not closed when the call was made
            reply = self._client._publish(self._service, self._method, *self._call)
        return self._client._await(self._service, self._method, reply)


class RpcClient:
    """``rpc.call("users", "register", payload)`` from any gateway thread;
    ``rpc.call_async(...)`` for calls that should overlap (``.result()`` each)."""

    def __init__(self, nameko_config, settings, tracer, name="gateway", record_metrics=True):
        self.nameko_config = nameko_config
        self.timeout = settings["timeout"]
        self.tracer = tracer
        self.connection = RpcConnection(nameko_config["AMQP_URI"], name)
        self.instances = InstanceCheck(nameko_config["AMQP_URI"])
        self._breaker_settings = settings["breaker"]
        self._breakers = {}
        self._lock = threading.Lock()
        # agora_gateway_rpc_* children per (service, method); None: not counted.
        self._series = {} if record_metrics else None

    def breaker(self, service):
        breaker = self._breakers.get(service)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(service)
                if breaker is None:
                    opened = _OpenedAt()
                    breaker = ConcurrentCircuitBreaker(
                        fail_max=self._breaker_settings["fail_max"],
                        reset_timeout=self._breaker_settings["reset_timeout"],
                        exclude=[_is_business_error],
                        listeners=[opened, metrics.BreakerMetrics(service)],
                        name=service,
                    )
                    breaker.opened = opened
                    self._breakers[service] = breaker
        return breaker

    def _record(self, service, method, outcome, started):
        if self._series is None:
            return
        series = self._series.get((service, method))
        if series is None:
            series = self._series.setdefault(
                (service, method), metrics.RpcCallSeries(service, method)
            )
        series.record(outcome, started)

    def _retry_after(self, breaker):
        remaining = breaker.reset_timeout - (time.monotonic() - breaker.opened.opened_at)
        return max(1, math.ceil(remaining))

    def call(self, service, method, *args, **kwargs):
        return self.call_async(service, method, *args, **kwargs).result()

    def call_async(self, service, method, *args, **kwargs):
        return PendingCall(self, service, method, args, kwargs)

    def _publish(self, service, method, args, kwargs, context):
        if not self.instances.has_instance(service):
            raise ServiceUnavailable(service, "no instance is running")
        try:
            return self.connection.call_async(service, method, args, kwargs, context, self.timeout)
        except BrokerUnreachable as exc:
            raise ServiceUnavailable(service, f"cannot reach the broker: {exc}") from exc
        except ConnectionLost as exc:
            raise ServiceUnavailable(
                service, f"transport error: {exc.cause.__class__.__name__}"
            ) from exc

    def _await(self, service, method, reply):
        try:
            return reply.result()
        except AgoraError:
            raise
        except ReplyTimeout:
            raise ServiceUnavailable(
                service, f"no reply within {self.timeout}s", outcome=metrics.TIMEOUT
            ) from None
        except ConnectionLost as exc:
            raise ServiceUnavailable(
                service, f"transport error: {exc.cause.__class__.__name__}"
            ) from exc
        except (RemoteError, BadRequest) as exc:
            # A bug on either side (an unexpected error, an unknown method or
            # signature): the service answered, but not with its contract.
            exc_type = getattr(exc, "exc_type", None) or exc.__class__.__name__
            log.error("unexpected error in %s.%s: %s", service, method, exc_type)
            raise UpstreamError(service, exc_type) from None

    def ping_broker(self):
        """Raise unless RabbitMQ answers now (no service is called)."""
        self.instances.ping()

    def probe(self, services, timeout):
        """Call every service's ``health()`` at once; no breakers.

        Returns ``{service: report or {"status": "unreachable", "error": ...}}``;
        raises if RabbitMQ itself cannot be reached.
        """
        results, pending = {}, {}
        for service in services:
            if not self.instances.has_instance(service):
                results[service] = {"status": "unreachable", "error": "no instance is running"}
                continue
            try:
                pending[service] = self.connection.call_async(
                    service, "health", (), {}, {}, timeout
                )
            except ConnectionLost as exc:
                results[service] = {"status": "unreachable", "error": exc.cause.__class__.__name__}
        for service, reply in pending.items():
            try:
                results[service] = reply.result()
            except ReplyTimeout:
                results[service] = {"status": "unreachable", "error": f"no reply within {timeout}s"}
            except ConnectionLost as exc:
                results[service] = {"status": "unreachable", "error": exc.cause.__class__.__name__}
            except Exception as exc:
                results[service] = {"status": "unreachable", "error": exc.__class__.__name__}
        return {service: results[service] for service in services}

    def close(self):
        self.connection.close()
        self.instances.close()
