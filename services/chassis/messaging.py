"""Nameko entrypoints and AMQP dependencies with Agora's guarantees.

* ``rpc`` and ``event_handler`` finish the worker's unit of work (commit or
  roll back the database session) *before* the reply is sent or the message is
  acked, so a caller never sees success for a write that failed to commit.
* ``RpcProxy`` wraps each outgoing call in a client span and sends its B3
  context; ``EventDispatcher`` builds headers at dispatch time (Nameko 2's own
  dispatcher captures them before other providers' ``worker_setup``) and
  publishes only after the unit of work has committed.
"""

import logging
import sys
import uuid

import redis
import sqlalchemy.exc
from nameko.amqp.publish import Publisher
from nameko.constants import DEFAULT_SERIALIZER, SERIALIZER_CONFIG_KEY
from nameko.events import EventHandler as NamekoEventHandler
from nameko.events import get_event_exchange
from nameko.extensions import DependencyProvider
from nameko.messaging import HeaderEncoder
from nameko.rpc import Rpc as NamekoRpc
from nameko.rpc import RpcProxy as NamekoRpcProxy

from services.chassis.errors import EXPECTED, Unavailable
from services.chassis.tracing import B3_KEY
from services.chassis.values import isoformat_utc, utcnow

log = logging.getLogger(__name__)


def keep_changes(error):
    """Mark ``error`` so that raising it still commits the unit of work.

    For a refusal whose side effects must stand, such as revoking a token
    family on refresh-token reuse: ``raise keep_changes(InvalidGrant(...))``
    commits the session, runs the after-commit callbacks and publishes the
    events, then replies with the error. If the commit fails, the caller gets
    ``Unavailable`` instead, as for any failed commit.
    """
    error.keep_changes = True
    return error


def finish_unit_of_work(worker_ctx, exc_info):
    """Let every dependency that takes part in the unit of work commit or roll back.

    A dependency opts in by defining ``complete(worker_ctx, exc_info)``, which
    returns the (possibly new) ``exc_info``: a failed commit turns success into
    an error before anyone is told. An error marked by ``keep_changes`` is
    completed as a success first, then returned.
    """
    keep = exc_info is not None and getattr(exc_info[1], "keep_changes", False)
    outcome = None if keep else exc_info
    for provider in sorted(
        worker_ctx.container.dependencies, key=lambda p: getattr(p, "completion_order", 100)
    ):
        complete = getattr(provider, "complete", None)
        if complete is not None:
            outcome = complete(worker_ctx, outcome)
    return exc_info if keep and outcome is None else outcome


_OUTAGES = (
    ((sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError), "database"),
    ((redis.ConnectionError, redis.TimeoutError), "cache"),
)


def as_outage(worker_ctx, exc_info):
    """The service's own database or Redis being down is ``Unavailable`` (503), not a bug."""
    if exc_info is None:
        return None
    for types, dependency in _OUTAGES:
        if isinstance(exc_info[1], types):
            return as_exc_info(
                Unavailable(
                    f"the {worker_ctx.service_name} service cannot reach its {dependency}",
                    {"dependency": dependency},
                )
            )
    return exc_info


def as_exc_info(exc):
    try:
        raise exc
    except Exception:
        return sys.exc_info()


class Rpc(NamekoRpc):
    def __init__(self, expected_exceptions=EXPECTED, **kwargs):
        super().__init__(expected_exceptions=expected_exceptions, **kwargs)

    def handle_result(self, message, worker_ctx, result, exc_info):
        exc_info = as_outage(worker_ctx, finish_unit_of_work(worker_ctx, exc_info))
        if exc_info is not None:
            result = None
        return super().handle_result(message, worker_ctx, result, exc_info)


class EventHandler(NamekoEventHandler):
    def __init__(self, source_service, event_type, expected_exceptions=EXPECTED, **kwargs):
        super().__init__(
            source_service, event_type, expected_exceptions=expected_exceptions, **kwargs
        )

    def handle_result(self, message, worker_ctx, result, exc_info):
        exc_info = finish_unit_of_work(worker_ctx, exc_info)
        return super().handle_result(message, worker_ctx, result, exc_info)


rpc = Rpc.decorator
event_handler = EventHandler.decorator


class _TracedServiceProxy:
    def __init__(self, proxy, service_name, worker_ctx, tracer):
        self._proxy = proxy
        self._service_name = service_name
        self._worker_ctx = worker_ctx
        self._tracer = tracer

    def __getattr__(self, method_name):
        method = getattr(self._proxy, method_name)

        def call(*args, **kwargs):
            name = f"rpc {self._service_name}.{method_name}"
            with self._tracer.client_span(name) as b3:
                previous = self._worker_ctx.data.get(B3_KEY)
                if b3:
                    self._worker_ctx.data[B3_KEY] = b3
                try:
                    return method(*args, **kwargs)
                finally:
                    if previous is None:
                        self._worker_ctx.data.pop(B3_KEY, None)
                    else:
                        self._worker_ctx.data[B3_KEY] = previous

        return call


class RpcProxy(NamekoRpcProxy):
    """``RpcProxy("users")`` whose calls are traced as client spans."""

    def get_dependency(self, worker_ctx):
        from services.chassis.service import process_tracer

        proxy = super().get_dependency(worker_ctx)
        tracer = process_tracer(self.container)
        return _TracedServiceProxy(proxy, self.target_service, worker_ctx, tracer)


def event_envelope(service_name, event_type, data, version=1):
    """The one shape every Agora event has."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": f"{service_name}.{event_type}",
        "occurred_at": isoformat_utc(utcnow()),
        "version": version,
        "data": data,
    }


class _Dispatch(HeaderEncoder):
    def __init__(self, provider, worker_ctx):
        self.provider = provider
        self.worker_ctx = worker_ctx
        self.pending = []

    def __call__(self, event_type, data, version=1):
        """Queue an event; it is published once the worker's unit of work commits."""
        envelope = event_envelope(self.provider.container.service_name, event_type, data, version)
        self.pending.append((event_type, envelope))
        return envelope

    def publish_pending(self):
        for event_type, envelope in self.pending:
            # Headers now, not at injection time: they carry the live span.
            headers = self.get_message_headers(self.worker_ctx)
            self.provider.publisher.publish(
                envelope,
                exchange=self.provider.exchange,
                routing_key=event_type,
                extra_headers=headers,
            )
        self.pending = []


class EventDispatcher(DependencyProvider):
    """Publishes ``<service>.<event>`` envelopes after the unit of work commits.

    Until the transactional outbox lands, an event can be lost if the process
    dies between commit and publish; it is never published for a rolled-back
    change.
    """

    completion_order = 200  # after the database has committed

    def setup(self):
        config = self.container.config
        self.exchange = get_event_exchange(self.container.service_name, config)
        self.publisher = Publisher(
            config["AMQP_URI"],
            serializer=config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER),
            declare=[self.exchange],
        )
        self.dispatches = {}

    def get_dependency(self, worker_ctx):
        dispatch = _Dispatch(self, worker_ctx)
        self.dispatches[worker_ctx] = dispatch
        return dispatch

    def complete(self, worker_ctx, exc_info):
        dispatch = self.dispatches.get(worker_ctx)
        if dispatch is None or not dispatch.pending:
            return exc_info
        if exc_info is not None:
            dispatch.pending = []
            return exc_info
        try:
            dispatch.publish_pending()
        except Exception:
            # The change is committed; losing the event is logged loudly.
            log.exception(
                "events committed but not published: %s", [e for e, _ in dispatch.pending]
            )
        return exc_info

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        # For plain Nameko entrypoints that do not finish the unit of work
        # before their result is handled; a second call changes nothing.
        finish_unit_of_work(worker_ctx, exc_info)

    def worker_teardown(self, worker_ctx):
        self.dispatches.pop(worker_ctx, None)
