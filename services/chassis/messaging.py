"""Nameko entrypoints and AMQP dependencies with Agora's guarantees.

* ``rpc`` and ``event_handler`` finish the worker's unit of work (commit or
  roll back the database session) *before* the reply is sent or the message is
  acked, so a caller never sees success for a write that failed to commit.
* ``rpc`` replies go out on one connection per container without publisher
  confirms (``ReplyPublisher``), in Nameko's wire format.
* ``event_handler`` records each event id in the service's inbox in the
  handler's transaction (duplicates are skipped), and a handler that fails has
  its message retried with backoff, then dead-lettered (``deadletter.py``).
* Calls to other services go through ``service_client.ServiceClient``.
* ``EventDispatcher`` writes events to the transactional outbox, with headers
  built at dispatch time (Nameko 2's own dispatcher captures them before other
  providers' ``worker_setup``); its relay (``outbox.py``) publishes them after
  the commit, with publisher confirms.
"""

import functools
import logging
import sys
import uuid

import amqp.exceptions
import eventlet
import kombu.exceptions
import redis
import sqlalchemy.exc
from eventlet.semaphore import Semaphore
from kombu import Connection, Producer
from nameko.events import BROADCAST, get_event_exchange
from nameko.events import EventHandler as NamekoEventHandler
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.messaging import HeaderEncoder, QueueConsumer
from nameko.rpc import Responder, RpcConsumer, get_rpc_exchange
from nameko.rpc import Rpc as NamekoRpc
from sqlalchemy import insert

from services.chassis.deadletter import DEAD_LETTER, RetryPublisher
from services.chassis.errors import EXPECTED, Unavailable, ValidationError
from services.chassis.metrics import DEAD_LETTERS, EVENT_RETRIES, INBOX_DUPLICATES, OUTBOX
from services.chassis.outbox import ConfirmingPublisher, OutboxRelay, release_quietly
from services.chassis.schemas import validate
from services.chassis.values import isoformat_utc, utcnow

log = logging.getLogger(__name__)

# Nameko's consumer thread notices a stop request (a consumer to cancel, or
# should_stop) only between two waits for the broker. Waking every 0.2 s to look
# was ~90% of an idle service's CPU; a wait now lasts up to CONSUMER_POLL_SECONDS
# and a stop request ends it at once (_end_idle_wait), so a container still
# stops in a fraction of a second. Heartbeats are checked between two waits:
# keep this well under nameko's 60 s heartbeat.
CONSUMER_POLL_SECONDS = 5.0


class _IdleWaitEnded(TimeoutError):
    """Thrown into the consumer thread's wait for the broker: as on any timeout,
    py-amqp keeps a frame it had partly read, and the loop goes round."""


def _consume(self, limit=None, **kwargs):
    """kombu's ``ConsumerMixin.consume``, whose wait a stop request can end, and
    whose work queues a health monitor can pause (``set_consuming``)."""
    with self.consumer_context(**kwargs) as (connection, channel, consumers):
        # Consumers made on a (re)connection consume from the start.
        self._agora_cancelled = False
        while not self.should_stop:
            self.on_iteration()  # cancels the consumers whose removal was asked
            if self.should_stop:
                break
            _apply_pause(self)
            self._idle_wait = eventlet.getcurrent()
            try:
                connection.drain_events(timeout=CONSUMER_POLL_SECONDS)
            except TimeoutError:
                connection.heartbeat_check()
                continue
            except OSError:
                if self.should_stop:
                    break
                raise
            finally:
                self._idle_wait = None
            yield


def _end_idle_wait(consumer):
    # Only a thread waiting for the broker in _consume is interrupted: it is
    # suspended there, as greenthreads switch only where they wait.
    waiting = getattr(consumer, "_idle_wait", None)
    if waiting is not None and waiting is not eventlet.getcurrent():
        eventlet.kill(waiting, _IdleWaitEnded())


def _interrupting(request):
    """``request`` (unregister_provider, kill) registers what the consumer thread
    must do, then waits for it: the wait is ended once the request is made."""

    @functools.wraps(request)
    def interrupting(self, *args):
        eventlet.spawn_after(0, _end_idle_wait, self)
        return request(self, *args)

    return interrupting


def _pausable(provider):
    """The consumers a paused instance cancels: its RPC queue and its event
    handlers' shared queues, the work another instance can take. Replies to its
    own calls and broadcast queues (one per instance) keep flowing."""
    if isinstance(provider, RpcConsumer):
        return True
    return isinstance(provider, NamekoEventHandler) and provider.handler_type != BROADCAST


def _apply_pause(queue_consumer):
    # Only the consumer thread may use its channel: set_consuming asks, this does.
    paused = getattr(queue_consumer, "_agora_paused", False)
    if paused == getattr(queue_consumer, "_agora_cancelled", False):
        return
    for provider, consumer in list(queue_consumer._consumers.items()):
        if _pausable(provider):
            if paused:
                consumer.cancel()  # basic.cancel: the broker sends the others everything
            else:
                consumer.consume()
    queue_consumer._agora_cancelled = paused


def set_consuming(queue_consumer, consuming):
    """Ask a container's ``QueueConsumer`` to stop (``consuming=False``) or
    resume taking work from its RPC and event queues; its consumer thread does
    it at once. Workers already running finish; messages already delivered are
    handled (a delivery that crosses the cancel is requeued by the client)."""
    queue_consumer._agora_paused = not consuming
    eventlet.spawn_after(0, _end_idle_wait, queue_consumer)


QueueConsumer.consume = _consume
QueueConsumer.unregister_provider = _interrupting(QueueConsumer.unregister_provider)
QueueConsumer.kill = _interrupting(QueueConsumer.kill)


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


# What publishing raises while RabbitMQ is unreachable or restarting: a socket
# error, a connection closed by the broker (amqp), or kombu's own wrappers.
BROKER_ERRORS = (OSError, amqp.exceptions.AMQPError, kombu.exceptions.KombuError)


class ReplyPublisher:
    """Publishes a container's RPC replies on one long-lived connection, without
    publisher confirms.

    Nameko's ``Responder`` takes a pooled producer per reply and waits for the
    broker's confirm: a third of a cached read's CPU in the catalog. A confirm
    buys nothing here: a reply lost on the way is a timeout, which every caller
    already handles (the request itself was acked only after this publish).
    Workers share the channel under a lock, so two replies' frames never
    interleave. Without confirms the broker says nothing on success; an error
    it reports (a closed channel) is read by py-amqp before the next publish,
    which then raises: the connection is dropped and the reply retried once on
    a new one.
    """

    def __init__(self, amqp_uri):
        self.amqp_uri = amqp_uri
        self.connection = None
        self.producer = None
        self._lock = Semaphore()

    def publish(self, payload, exchange, routing_key, **properties):
        # Same arguments as nameko.amqp.publish.Publisher, so the same message.
        with self._lock:
            try:
                self._send(payload, exchange, routing_key, properties)
            except Exception:
                self.close()
                self._send(payload, exchange, routing_key, properties)

    def _send(self, payload, exchange, routing_key, properties):
        if self.producer is None:
            self.connection = Connection(self.amqp_uri, connect_timeout=5)
            self.producer = Producer(self.connection.channel(), auto_declare=False)
        self.producer.publish(
            payload,
            exchange=exchange,
            routing_key=routing_key,
            delivery_mode=2,
            mandatory=False,
            priority=0,
            headers={},
            **properties,
        )

    def close(self):
        release_quietly(self.connection)
        self.connection = None
        self.producer = None


class _RpcConsumer(RpcConsumer):
    """Nameko's RPC consumer, replying through the container's ``ReplyPublisher``."""

    def setup(self):
        super().setup()
        self.replies = ReplyPublisher(self.container.config["AMQP_URI"])
        self.exchange = get_rpc_exchange(self.container.config)

    def handle_result(self, message, result, exc_info):
        responder = Responder(None, self.exchange, None, message)
        # Nameko's own reply (payload, serializer, error encoding), our publisher.
        responder.publisher_cls = lambda *args, **kwargs: self.replies
        try:
            result, exc_info = responder.send_response(result, exc_info)
        except BROKER_ERRORS as exc:
            # The broker went away (a restart) after the work was done and
            # committed: this reply is lost and its caller times out, as for any
            # lost reply. Raising here would end the whole container (Nameko
            # treats a failing handle_result as fatal): a RabbitMQ restart took
            # the service down (the chaos suite, chaos/).
            log.warning(
                "reply to %s lost, the broker is unreachable: %s",
                message.properties.get("reply_to"),
                exc.__class__.__name__,
            )
        # Safe on a dead connection (Nameko skips it; the broker requeued it then).
        self.queue_consumer.ack_message(message)
        return result, exc_info

    def stop(self):
        super().stop()
        self.replies.close()

    def kill(self):
        super().kill()
        self.replies.close()


class Rpc(NamekoRpc):
    rpc_consumer = _RpcConsumer()

    def __init__(self, expected_exceptions=EXPECTED, **kwargs):
        super().__init__(expected_exceptions=expected_exceptions, **kwargs)

    def handle_result(self, message, worker_ctx, result, exc_info):
        exc_info = as_outage(worker_ctx, finish_unit_of_work(worker_ctx, exc_info))
        if exc_info is not None:
            result = None
        return super().handle_result(message, worker_ctx, result, exc_info)


class DeadLetters(SharedExtension):
    """Per service: moves failed event messages to a delay queue or its dead letters."""

    def setup(self):
        self.router = RetryPublisher(
            self.container.config["AMQP_URI"],
            self.container.service_name,
            self.container.config["AGORA"]["events"],
        )

    def start(self):
        # The queue exists from the start, so operators can always list it.
        try:
            self.router.declare_dead_letter_queue()
        except BROKER_ERRORS as exc:
            # RabbitMQ is down or restarting: start anyway, as Nameko's consumers
            # do (they connect when it is back). The queue is declared with the
            # first dead letter, or at the next start. Raising here ended the
            # process (the chaos suite: billing restarted during a broker restart).
            log.warning(
                "dead-letter queue not declared at start, the broker is unreachable: %s",
                exc.__class__.__name__,
            )

    def stop(self):
        self.router.close()

    kill = stop


class EventHandler(NamekoEventHandler):
    """Nameko's handler, finishing the unit of work before the ack, and never
    dropping a message that failed: it is retried with backoff, then dead-lettered."""

    dead_letters = DeadLetters()

    def __init__(self, source_service, event_type, expected_exceptions=EXPECTED, **kwargs):
        super().__init__(
            source_service, event_type, expected_exceptions=expected_exceptions, **kwargs
        )

    def setup(self):
        super().setup()
        service = self.container.service_name
        event = f"{self.source_service}.{self.event_type}"
        self._retries = EVENT_RETRIES.labels(service, event)
        self._dead_letters = DEAD_LETTERS.labels(service, self.queue.name)

    def _settle(self, settle, message):
        """Ack or requeue ``message``; with the broker connection gone (a RabbitMQ
        restart) that fails, and raising here would end the container (Nameko
        treats an error in handle_result as fatal). The broker requeues what was
        never acked when the connection closed: the message comes again, and the
        inbox skips it if its work was committed (found by the chaos suite:
        notifications exited with code 1 during a broker restart)."""
        try:
            settle(message)
        except BROKER_ERRORS as exc:
            log.warning(
                "%s.%s: the broker connection is gone (%s): the message will be delivered again",
                self.source_service,
                self.event_type,
                exc.__class__.__name__,
            )

    def handle_result(self, message, worker_ctx, result, exc_info):
        exc_info = finish_unit_of_work(worker_ctx, exc_info)
        if exc_info is None:
            self._settle(self.queue_consumer.ack_message, message)
            return result, exc_info
        try:
            # The service's own database or Redis down is an outage too.
            outage = as_outage(worker_ctx, exc_info) is not exc_info
            outcome = self.dead_letters.router.handle_failure(
                message, self.queue.name, exc_info, outage=outage
            )
        except Exception:
            log.exception("could not move a failed %s event aside; requeued", self.event_type)
            self._settle(self.queue_consumer.requeue_message, message)
            return result, exc_info
        (self._dead_letters if outcome == DEAD_LETTER else self._retries).inc()
        log.warning(
            "%s.%s failed on %s.%s (%s): %s",
            worker_ctx.service_name,
            self.method_name,
            self.source_service,
            self.event_type,
            outcome,
            exc_info[1],
        )
        self._settle(self.queue_consumer.ack_message, message)
        return result, exc_info


class MalformedEvent(Exception):
    """A message on an event queue that is not an Agora event envelope."""


def event_handler(source_service, event_type, **kwargs):
    """``@event_handler("orders", "order_created")``: handle ``<source>.<event>`` envelopes.

    In a service with a database (``db``), the event id is recorded in the
    inbox inside the handler's own transaction, and an event already handled
    by this handler is skipped: a redelivered or duplicated event has no
    second effect.
    """

    def decorate(fn):
        duplicates = {}  # service name -> its agora_inbox_duplicates_total child

        @functools.wraps(fn)
        def handle(self, event):
            if not isinstance(event, dict) or not isinstance(event.get("event_id"), str):
                raise MalformedEvent(f"not an event envelope: {str(event)[:200]}")
            db = getattr(self, "db", None)
            if db is not None:
                if not db.claim_event(event, f"{self.name}.{fn.__name__}"):
                    log.info("event %s already handled by %s", event["event_id"], fn.__name__)
                    counter = duplicates.get(self.name)
                    if counter is None:
                        event_name = f"{source_service}.{event_type}"
                        counter = duplicates[self.name] = INBOX_DUPLICATES.labels(
                            self.name, event_name
                        )
                    counter.inc()
                    return None
            return fn(self, event)

        return EventHandler.decorator(source_service, event_type, **kwargs)(handle)

    return decorate


def broadcast_handler(source_service, event_type):
    """``@broadcast_handler("users", "profile_updated")``: every running instance
    of the service gets the event, on an exclusive queue of its own that goes
    away with it.

    At most once, with no inbox, retries or dead letters: for state held in the
    process (a cache to forget, say), where a missed event only means waiting
    for that state's own expiry. Anything that must happen once per event, or
    must not be missed, belongs in an ``event_handler``."""
    return NamekoEventHandler.decorator(
        source_service, event_type, handler_type=BROADCAST, reliable_delivery=False
    )


rpc = Rpc.decorator


def event_envelope(service_name, event_type, data, version=1):
    """The one shape every Agora event has."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": f"{service_name}.{event_type}",
        "occurred_at": isoformat_utc(utcnow()),
        "version": version,
        "data": data,
    }


class EventContractError(Exception):
    """A service tried to emit an event its contract (``EVENTS``) does not allow."""


def context_headers(context_data):
    """The worker's context to carry on an event it emits (trace, call id stack).

    Nameko takes *every* header of the incoming message into the context,
    including the delivery's own: RabbitMQ's ``x-death`` (holding AMQP
    timestamps, so datetimes) on a message back from a retry queue, and the
    chassis's ``x-agora-*`` retry bookkeeping. Those describe that delivery, not
    the work, and a datetime cannot be stored in the outbox: they stay behind."""
    return {key: value for key, value in context_data.items() if not key.startswith("x-")}


class _Dispatch(HeaderEncoder):
    def __init__(self, provider, worker_ctx):
        self.provider = provider
        self.worker_ctx = worker_ctx
        self.woken = False

    def get_message_headers(self, worker_ctx):
        data = context_headers(worker_ctx.context_data)
        return {
            self._get_header_name(key): value for key, value in data.items() if value is not None
        }

    def __call__(self, event_type, data):
        """Write the event to the outbox, in the worker's transaction; returns the envelope."""
        provider = self.provider
        envelope = provider.envelope(event_type, data)
        unit = provider.database.dbs[self.worker_ctx]
        # A Core insert in the worker's transaction (cheaper than an ORM object
        # per event); it flushes the worker's pending changes first.
        unit.session.execute(
            insert(provider.outbox.__table__).values(
                event_id=uuid.UUID(envelope["event_id"]),
                event_type=event_type,
                envelope=envelope,
                # Headers now, not at injection time: they carry the live span.
                headers=self.get_message_headers(self.worker_ctx),
            )
        )
        if not self.woken:
            unit.on_commit(provider.wake)
            self.woken = True
        return envelope


class EventDispatcher(DependencyProvider):
    """``dispatch = EventDispatcher(EVENTS)``: ``self.dispatch("order_created", data)``.

    The event goes to the outbox table in the same transaction as the change
    it announces (the service needs ``db = Database(Base)`` with
    ``event_tables(Base)``); this provider's relay publishes it after the
    commit, with publisher confirms. ``EVENTS`` is the service's event
    contract: ``{name: {"version", "summary", "payload": JSON schema}}``; an
    event not in it is refused, and with ``events.validate`` its data must
    match the payload schema.
    """

    def __init__(self, events):
        self.contract = events

    def setup(self):
        config = self.container.config
        self.settings = config["AGORA"]["events"]
        self.exchange = get_event_exchange(self.container.service_name, config)
        databases = [
            d
            for d in self.container.dependencies
            if hasattr(d, "dbs") and hasattr(d, "declarative_base")
        ]
        if len(databases) != 1:
            raise EventContractError(
                f"{self.container.service_name}: EventDispatcher needs exactly one Database"
            )
        self.database = databases[0]
        self.outbox = getattr(self.database.declarative_base, "agora_outbox", None)
        if self.outbox is None:
            raise EventContractError(
                f"{self.container.service_name}: call event_tables(Base) in its models"
            )
        self.relay = None

    def start(self):
        publisher = ConfirmingPublisher(self.container.config["AMQP_URI"], self.exchange)
        service = self.container.service_name
        self.relay = OutboxRelay(self.database.engine, publisher, self.settings, service)
        # agora_outbox_backlog and _oldest_age_seconds: one indexed query per
        # scrape (the relay's own loop runs after every commit that wrote events).
        OUTBOX.add(service, self.relay)
        self.container.spawn_managed_thread(self.relay.run, identifier="outbox_relay")

    def stop(self):
        # Runs once the container's workers are done: the relay publishes what
        # they committed and finishes its batch before the process exits.
        if self.relay is not None:
            OUTBOX.remove(self.container.service_name, self.relay)
            self.relay.stop()

    def kill(self):
        if self.relay is not None:
            OUTBOX.remove(self.container.service_name, self.relay)
            self.relay.kill()

    def wake(self):
        if self.relay is not None:
            self.relay.wake()

    def envelope(self, event_type, data):
        spec = self.contract.get(event_type)
        if spec is None:
            raise EventContractError(
                f"{self.container.service_name}.{event_type} is not in the service's EVENTS"
            )
        if self.settings["validate"]:
            try:
                validate(spec["payload"], data)
            except ValidationError as exc:
                raise EventContractError(
                    f"{self.container.service_name}.{event_type} does not match its "
                    f"contract: {exc.details}"
                ) from None
        return event_envelope(self.container.service_name, event_type, data, spec["version"])

    def get_dependency(self, worker_ctx):
        return _Dispatch(self, worker_ctx)

    def health(self):
        if self.relay is None:
            return "ok"
        if self.relay.last_error is not None:
            failure = self.relay.last_error.__class__.__name__
            return f"error: outbox relay cannot publish ({failure})"
        return "ok"
