"""Calling Nameko services from many threads over one AMQP connection per process.

Nameko's standalone proxy gives every caller its own connection and reply
queue, makes the caller drain that queue itself and waits for a publisher
confirm on every request; a threaded process needed a pool of them, and under
load about a quarter of the gateway's CPU went there. Here one connection
carries every thread's calls:

* one reply thread owns every read on the connection: it drains it, hands each
  reply to the caller waiting on its correlation id (a dict of waiters: a
  lock and a slot), sends heartbeats and drops waiters nobody came back for;
* callers publish their requests on a channel of their own on that same
  connection, one publish at a time (a lock). A publish only writes: the frame
  is sent with ``send_method``, not ``basic_publish``, which would also read
  the socket (to look for ``connection.blocked``) behind the reply thread's
  back. Reading and writing one plain TCP socket from two threads is safe;
  py-amqp also serialises every frame write on a connection itself, which
  covers the close-ok the reply thread answers a broker's close with;
* no publisher confirm and no ``mandatory`` flag: a lost request shows up as
  the caller's timeout, which it handles anyway, and a service that was never
  started is the caller's instance check to find (see ``gateway.rpc``);
* requests are transient (delivery mode 1) and expire in the broker after the
  call's timeout: nobody waits for them any longer, and a broker restart
  takes the reply queue with them anyway.

The wire format is Nameko 2's, so the services, ``nameko shell`` and plain
Nameko clients see no difference: a JSON ``{"args", "kwargs"}`` request on the
``nameko-rpc`` topic exchange with routing key ``<service>.<method>``,
``reply_to`` the routing key that binds our reply queue to that exchange, a
``correlation_id``, and the caller's context data as ``nameko.<key>`` headers
(the call id stack and the B3 trace key); the reply is ``{"result", "error"}``
and an error is rebuilt with ``nameko.exceptions.deserialize``, so registered
exceptions (every ``AgoraError``) arrive as themselves.

When the connection is lost, every caller still waiting fails at once with
``ConnectionLost`` and the next call opens a new connection with a new reply
queue (exclusive and auto-deleted: it goes with its connection). A process
forked after a call (gunicorn with ``--preload``) opens its own connection
rather than sharing its parent's.
"""

import logging
import os
import threading
import time
import uuid

from amqp import Message, spec
from kombu import Connection
from kombu.utils.json import dumps, loads
from nameko.exceptions import deserialize

log = logging.getLogger(__name__)

RPC_EXCHANGE = "nameko-rpc"
# How often the reply thread looks up from the socket when no reply comes:
# heartbeats, forgotten waiters, a requested stop.
TICK = 1.0
# A waiter whose caller never came back for it (an abandoned call) is dropped
# this long after its deadline.
_GRACE = 1.0
_PUBLISH_ARGS = "Bssbb"  # basic.publish: ticket, exchange, routing key, mandatory, immediate
# The reply thread reads up to this much at a time (see _Session.__init__).
_READ_SIZE = 4096


class BrokerUnreachable(Exception):
    """No connection to RabbitMQ could be opened; nothing was sent."""


class ConnectionLost(Exception):
    """The connection failed while the call was in flight: it may or may not have run."""

    def __init__(self, cause):
        super().__init__(f"connection lost: {cause.__class__.__name__}: {cause}")
        self.cause = cause


class ReplyTimeout(Exception):
    """No reply within the call's timeout; a reply that comes later is dropped."""

    def __init__(self, timeout):
        super().__init__(f"no reply within {timeout}s")
        self.timeout = timeout


class _Waiter:
    """One caller's slot for its reply. ``ready`` is a lock taken at birth and
    released by whoever fills the slot (the reply, or a failure): the caller
    waits by taking it again. Lighter than an Event, which costs the reply
    thread a Condition's notify in Python for every reply; one waiter, one
    release (whoever pops the waiter from the dict releases it), so a lock is
    enough."""

    __slots__ = ("ready", "body", "error", "deadline")

    def __init__(self, deadline):
        self.ready = threading.Lock()
        self.ready.acquire()
        self.body = None
        self.error = None
        self.deadline = deadline


class PendingReply:
    """A request on its way; ``result()`` waits for its reply (call it once)."""

    __slots__ = ("_session", "_correlation_id", "_waiter", "_timeout")

    def __init__(self, session, correlation_id, waiter, timeout):
        self._session = session
        self._correlation_id = correlation_id
        self._waiter = waiter
        self._timeout = timeout

    def result(self):
        """The method's result; raises its error, ``ReplyTimeout`` or ``ConnectionLost``."""
        waiter = self._waiter
        if not waiter.ready.acquire(timeout=max(0.0, waiter.deadline - time.monotonic())):
            self._session.forget(self._correlation_id)
            raise ReplyTimeout(self._timeout)
        if waiter.error is not None:
            raise waiter.error
        reply = loads(waiter.body)
        error = reply.get("error")
        if error:
            raise deserialize(error)
        return reply["result"]


class _Session:
    """One connection's life: its reply queue, its reply thread, its waiters."""

    def __init__(self, amqp_uri, name, connect_timeout, heartbeat):
        self.pid = os.getpid()
        self.name = name
        self.alive = True
        self._stopping = False
        self._waiters = {}
        self._lock = threading.Lock()  # alive + the waiters of a failing session
        self._publish_lock = threading.Lock()
        self._client = Connection(amqp_uri, connect_timeout=connect_timeout, heartbeat=heartbeat)
        try:
            self._client.connect()
            self._connection = self._client.connection
            self.reply_to = str(uuid.uuid4())
            replies = self._connection.channel()
            replies.exchange_declare(RPC_EXCHANGE, "topic", durable=True, auto_delete=False)
            queue = f"rpc.reply-{name}-{self.reply_to}"
            replies.queue_declare(queue, durable=False, exclusive=True, auto_delete=True)
            replies.queue_bind(queue, RPC_EXCHANGE, self.reply_to)
            replies.basic_consume(queue, no_ack=True, callback=self._on_reply)
            self._publisher = self._connection.channel()
            # Set once: the reply thread drains with this same timeout, so
            # py-amqp never changes the socket's timeout under a publisher.
            transport = self._connection.transport
            transport.sock.settimeout(TICK)
            # py-amqp asks the socket for exactly the next part of a frame:
            # nine reads per reply, each releasing and retaking the GIL, and
            # behind busy request threads every retake can wait a switch
            # interval. Read what is there instead; py-amqp keeps the rest
            # in its read buffer for the next frames.
            recv = transport.sock.recv
            transport._quick_recv = lambda size: recv(max(size, _READ_SIZE))
        except Exception as exc:
            self._client.collect()
            raise BrokerUnreachable(f"{exc.__class__.__name__}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name=f"rpc-replies-{name}", daemon=True)
        self._thread.start()

    def publish(self, routing_key, args, kwargs, context, timeout):
        correlation_id = str(uuid.uuid4())
        headers = {f"nameko.{key}": value for key, value in context.items() if value is not None}
        headers["nameko.call_id_stack"] = [f"{self.name}.call.{correlation_id}"]
        message = Message(
            dumps({"args": args, "kwargs": kwargs}).encode(),
            content_type="application/json",
            content_encoding="utf-8",
            application_headers=headers,
            reply_to=self.reply_to,
            correlation_id=correlation_id,
            expiration=str(max(1, int(timeout * 1000))),
            delivery_mode=1,
        )
        waiter = _Waiter(time.monotonic() + timeout)
        with self._lock:
            if not self.alive:
                raise ConnectionLost(ConnectionError("the connection was closed"))
            self._waiters[correlation_id] = waiter
        try:
            with self._publish_lock:
                self._publisher.send_method(
                    spec.Basic.Publish,
                    _PUBLISH_ARGS,
                    (0, RPC_EXCHANGE, routing_key, False, False),
                    message,
                )
        except Exception as exc:
            self._fail(exc)
            raise ConnectionLost(exc) from exc
        return PendingReply(self, correlation_id, waiter, timeout)

    def forget(self, correlation_id):
        self._waiters.pop(correlation_id, None)

    def _on_reply(self, message):
        correlation_id = message.properties.get("correlation_id")
        waiter = self._waiters.pop(correlation_id, None)
        if waiter is None:
            log.debug("dropping a reply nobody waits for any more: %s", correlation_id)
            return
        waiter.body = message.body
        waiter.ready.release()

    def _run(self):
        connection = self._connection
        housekeeping = time.monotonic() + TICK
        try:
            while not self._stopping:
                try:
                    connection.drain_events(timeout=TICK)
                except TimeoutError:
                    pass
                now = time.monotonic()
                if now >= housekeeping:
                    housekeeping = now + TICK
                    with self._publish_lock:
                        connection.heartbeat_tick()
                    self._drop_abandoned(now)
        except Exception as exc:
            if not self._stopping:
                log.warning("RPC connection lost: %s: %s", exc.__class__.__name__, exc)
            self._fail(exc)
            return
        self._fail(ConnectionError("the client was closed"))
        try:
            connection.close()
        except Exception:
            log.debug("error closing the RPC connection", exc_info=True)

    def _drop_abandoned(self, now):
        for correlation_id, waiter in list(self._waiters.items()):
            if waiter.deadline + _GRACE < now:
                self._waiters.pop(correlation_id, None)

    def _fail(self, exc):
        with self._lock:
            if not self.alive:
                return
            self.alive = False
            waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            waiter.error = ConnectionLost(exc)
            waiter.ready.release()
        if not self._stopping:
            # Unblocks the reply thread if the failure was a publish's.
            self._client.collect()

    def close(self):
        """Fail the calls still waiting and close the connection (the reply thread does)."""
        self._stopping = True
        if self._thread is not threading.current_thread():
            self._thread.join(TICK * 3)


class RpcConnection:
    """``call_async(service, method, args, kwargs, context, timeout)`` from any thread.

    ``name`` names the reply queue (``rpc.reply-<name>-<uuid>``: what the
    broker lets the principal declare) and the caller in the call id stack.
    """

    def __init__(self, amqp_uri, name, connect_timeout=5.0, heartbeat=60):
        self._uri = amqp_uri
        self._name = name
        self._connect_timeout = connect_timeout
        self._heartbeat = heartbeat
        self._session = None
        self._lock = threading.Lock()

    def call_async(self, service, method, args, kwargs, context, timeout):
        """Publish the request now; returns its ``PendingReply``.

        Raises ``BrokerUnreachable`` (not sent) or ``ConnectionLost``."""
        return self._current().publish(f"{service}.{method}", args, kwargs, context, timeout)

    def _current(self):
        session = self._session
        if session is not None and session.alive and session.pid == os.getpid():
            return session
        with self._lock:
            session = self._session
            if session is None or not session.alive or session.pid != os.getpid():
                # A parent's session is left alone: its socket is the parent's.
                self._session = None
                session = self._session = _Session(
                    self._uri, self._name, self._connect_timeout, self._heartbeat
                )
            return session

    def close(self):
        with self._lock:
            session, self._session = self._session, None
        if session is not None and session.pid == os.getpid():
            session.close()
