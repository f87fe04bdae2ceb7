"""Calling the services from the gateway: pooled, circuit-broken, traced RPC.

Nameko's standalone proxy is single-threaded (one reply queue drained by the
caller), so gunicorn's threads share a bounded pool of long-lived proxies: a
thread borrows one for a call and gives it back. A proxy that saw any
transport error or timeout is closed and replaced, never reused.

Each service sits behind its own pybreaker breaker (in-process state): a
timeout, a missing service or a transport error counts as a failure; a named
business error (``AgoraError``: not found, conflict, validation) is an answer,
not a failure.
"""

import logging
import math
import queue
import socket
import threading
import time

import pybreaker
from amqp.exceptions import AMQPError, NotFound
from kombu import Connection
from kombu.exceptions import KombuError
from nameko.containers import WorkerContext
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from nameko.rpc import ServiceProxy
from nameko.standalone.rpc import ClusterRpcProxy, StandaloneProxyBase

from services.chassis.errors import AgoraError
from services.chassis.tracing import B3_KEY

log = logging.getLogger(__name__)


class ServiceUnavailable(Exception):
    """The service cannot answer now; the client may retry after ``retry_after`` s."""

    def __init__(self, service, reason, retry_after=1):
        super().__init__(f"{service} is unavailable ({reason})")
        self.service = service
        self.reason = reason
        self.retry_after = retry_after


class UpstreamError(Exception):
    """The service failed in an unexpected way (a bug, not bad input)."""

    def __init__(self, service, exc_type):
        super().__init__(f"{service} failed ({exc_type})")
        self.service = service
        self.exc_type = exc_type


_TRANSPORT_ERRORS = (RpcTimeout, UnknownService, socket.error, AMQPError, KombuError, RuntimeError)


class PooledProxy(StandaloneProxyBase):
    """One connection and reply queue; calls carry per-call context data (trace headers).

    Requests expire in the broker after the call's timeout: a request to a
    service that is down is dropped, not run minutes later for a caller that
    has long given up.
    """

    def __init__(self, nameko_config, timeout):
        super().__init__(nameko_config, timeout=timeout)
        self._container = self._worker_ctx.container
        self._expiration = timeout
        self.start()

    def call(self, service, method, args, kwargs, context):
        worker_ctx = WorkerContext(
            self._container, service=None, entrypoint=self.Dummy, data=context
        )
        proxy = ServiceProxy(worker_ctx, service, self._reply_listener, expiration=self._expiration)
        return getattr(proxy, method)(*args, **kwargs)

    def close(self):
        try:
            self.stop()
        except Exception:  # closing a broken connection may fail again
            log.debug("error closing rpc proxy", exc_info=True)


class ProxyPool:
    def __init__(self, factory, size, acquire_timeout):
        self._factory = factory
        self._size = size
        self._acquire_timeout = acquire_timeout
        self._idle = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()

    def acquire(self):
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            can_create = self._created < self._size
            if can_create:
                self._created += 1
        if can_create:
            try:
                return self._factory()
            except Exception:
                with self._lock:
                    self._created -= 1
                raise
        try:
            return self._idle.get(timeout=self._acquire_timeout)
        except queue.Empty:
            raise ServiceUnavailable("gateway", "all RPC connections are busy") from None

    def release(self, proxy, broken=False):
        if broken:
            proxy.close()
            with self._lock:
                self._created -= 1
        else:
            self._idle.put(proxy)

    def close(self):
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


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


class ConcurrentCircuitBreaker(pybreaker.CircuitBreaker):
    """A breaker whose guarded calls overlap.

    pybreaker 1.4 holds the breaker's lock for the whole guarded call, so every
    call to one service waits for the one before it, in each gateway process.
    Here the lock only guards reading and updating the state; a call in the
    closed state runs unlocked. Open and half-open keep pybreaker's behaviour:
    refused at once, or one trial call at a time.
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


def _is_business_error(exc):
    return isinstance(exc, AgoraError)


class RpcClient:
    """``rpc.call("users", "register", payload)`` from any gateway thread."""

    def __init__(self, nameko_config, settings, tracer):
        self.nameko_config = nameko_config
        self.timeout = settings["timeout"]
        self.tracer = tracer
        self.pool = ProxyPool(
            lambda: PooledProxy(nameko_config, self.timeout),
            size=settings["pool_size"],
            acquire_timeout=settings["acquire_timeout"],
        )
        self.instances = InstanceCheck(nameko_config["AMQP_URI"])
        self._breaker_settings = settings["breaker"]
        self._breakers = {}
        self._lock = threading.Lock()

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
                        listeners=[opened],
                        name=service,
                    )
                    breaker.opened = opened
                    self._breakers[service] = breaker
        return breaker

    def _retry_after(self, breaker):
        remaining = breaker.reset_timeout - (time.monotonic() - breaker.opened.opened_at)
        return max(1, math.ceil(remaining))

    def call(self, service, method, *args, **kwargs):
        breaker = self.breaker(service)
        with self.tracer.client_span(f"rpc {service}.{method}") as b3:
            context = {B3_KEY: b3} if b3 else {}
            try:
                return breaker.call(self._call, service, method, args, kwargs, context)
            except pybreaker.CircuitBreakerError:
                raise ServiceUnavailable(
                    service, "circuit open", self._retry_after(breaker)
                ) from None

    def _call(self, service, method, args, kwargs, context):
        if not self.instances.has_instance(service):
            raise ServiceUnavailable(service, "no instance is running")
        try:
            proxy = self.pool.acquire()
        except ServiceUnavailable:
            raise
        except Exception as exc:
            raise ServiceUnavailable(
                service, f"cannot reach the broker: {exc.__class__.__name__}"
            ) from exc
        broken = True
        try:
            result = proxy.call(service, method, args, kwargs, context)
            broken = False
            return result
        except AgoraError:
            broken = False
            raise
        except RpcTimeout:
            raise ServiceUnavailable(service, f"no reply within {self.timeout}s") from None
        except UnknownService:
            broken = False
            raise ServiceUnavailable(service, "no instance is running") from None
        except RemoteError as exc:
            broken = False
            log.error("unexpected error in %s.%s: %s", service, method, exc.exc_type)
            raise UpstreamError(service, exc.exc_type) from None
        except _TRANSPORT_ERRORS as exc:
            raise ServiceUnavailable(service, f"transport error: {exc.__class__.__name__}") from exc
        finally:
            self.pool.release(proxy, broken=broken)

    def ping_broker(self):
        """Raise unless RabbitMQ answers now (no service is called)."""
        self.instances.ping()

    def probe(self, services, timeout):
        """Call every service's ``health()`` at once on a fresh connection; no breakers.

        Returns ``{service: report or {"status": "unreachable", "error": ...}}``;
        raises if RabbitMQ itself cannot be reached.
        """
        results = {}
        with ClusterRpcProxy(self.nameko_config, timeout=timeout) as cluster:
            pending = {}
            for service in services:
                if not self.instances.has_instance(service):
                    results[service] = {"status": "unreachable", "error": "no instance is running"}
                    continue
                try:
                    pending[service] = cluster[service].health.call_async()
                except UnknownService:
                    results[service] = {"status": "unreachable", "error": "no instance is running"}
            for service, reply in pending.items():
                try:
                    results[service] = reply.result()
                except RpcTimeout:
                    results[service] = {
                        "status": "unreachable",
                        "error": f"no reply within {timeout}s",
                    }
                    break  # the connection was reset: the remaining replies are lost
                except Exception as exc:
                    results[service] = {"status": "unreachable", "error": exc.__class__.__name__}
            for service in services:
                results.setdefault(
                    service, {"status": "unreachable", "error": f"no reply within {timeout}s"}
                )
        return results

    def close(self):
        self.pool.close()
        self.instances.close()
