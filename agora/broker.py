"""Least privilege on RabbitMQ: one broker user per principal, and its permissions.

Every service, the gateway and outside integrations connect as a user of their
own (``services.chassis.config.amqp_uri``). What each may do is computed here
from the code itself (its Nameko entrypoints, RPC proxies and event contract)
plus ``RPC_CALLS``, the one table of which RPC methods each caller may invoke:

* configure/write/read regexes name exactly the exchanges and queues it
  declares, publishes to, binds and consumes;
* topic permissions (checked by the broker on every publish and every bind on
  a topic exchange) limit the routing keys: on ``nameko-rpc`` the methods it
  calls and the replies it sends (a reply's routing key is the caller's reply
  queue id, a UUID), and the ``<service>.<method>`` binding of its own RPC
  queue; on ``<service>.events`` only the events in its own contract; on each
  exchange it listens to, only the events it handles.

No principal may publish to the default exchange (``amq.default``): it routes to
any queue by name, so with it a service could drop a forged event straight
into another service's handler queue. Retries and dead letters go through the
service's own ``<service>.retry`` exchange instead (``chassis/deadletter.py``).

``agora setup`` (and the test suite, per run) applies all of it in one
``rabbitmqctl import_definitions``: users, permissions and topic permissions
are created or updated in place, so it is idempotent.
"""

import base64
import hashlib
import os
import re
from dataclasses import dataclass, field
from importlib import import_module

from agora.cli import SERVICES
from services.chassis.config import BROKER_PRINCIPALS, ConfigError, broker_user
from services.chassis.schemas import DEAD_LETTER_SERVICES

RPC_EXCHANGE = "nameko-rpc"
# nameko 2: a reply is published to nameko-rpc with the caller's reply queue id.
REPLY_KEY = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# The reply queue of the gateway's RPC connection (services/chassis/rpc_client.py).
GATEWAY_REPLY_QUEUE = rf"rpc\.reply-gateway-{REPLY_KEY}"
NOTHING = "^$"

# The services, as ``agora run`` starts them: {name: "module:Class"}.
SERVICE_CLASSES = SERVICES

# Which RPC methods each principal calls: ``{caller: {service: methods}}``.
# tests/unit/test_broker_permissions.py checks this against the calls in the
# code, so a new call fails a test rather than a request in production.
RPC_CALLS = {
    "auth": {"users": ("get_roles",)},
    "orders": {"catalog": ("get_product",)},
    "billing": {"orders": ("get_payment_token",)},
    "inventory": {"catalog": ("known_skus",)},
    "notifications": {"users": ("get_user", "issue_verification")},
    "gateway": {
        "users": (
            "authenticate",
            "get_user",
            "register",
            "request_email_verification",
            "set_roles",
            "update_profile",
            "verify_email",
            "verify_phone",
        ),
        "auth": (
            "create_authorization_code",
            "get_client",
            "get_refresh_token",
            "issue_token",
            "jwks",
            "redeem_authorization_code",
            "revoke_access_token",
            "revoke_refresh_token",
            "rotate_refresh_token",
            "verify_client_secret",
        ),
        "catalog": (
            "add_product_image",
            "create_product",
            "get_product",
            "list_products",
            "remove_product_image",
            "update_product",
        ),
        "inventory": ("get_reservation", "get_stock", "set_stock"),
        "orders": ("cancel_order", "create_order", "get_order", "list_orders"),
        "billing": (
            "get_payment",
            "get_payment_for_order",
            "list_payments",
            "open_dispute",
            "refund_payment",
            "resolve_dispute",
        ),
        "notifications": ("list_notifications",),
    },
}
# Which events the gateway consumes (its catalog cache's invalidations):
# ``{source service: event types}``, on exclusive queues of its own
# (``gateway/events.py``); tests/unit/test_broker_principals.py checks this
# against the gateway's code and the sources' contracts.
GATEWAY_EVENTS = {"catalog": ("product_created", "product_updated")}
# The queue of one gateway process's event connection: gateway.events.queue_name.
GATEWAY_EVENT_QUEUE = r"gateway\.{source}-events-[0-9a-f]{{32}}"
# The dead-letter RPCs every event-handling service answers (services/chassis/
# service.py DeadLetterAdmin), called by /v1/ops/dead-letters.
DEAD_LETTER_METHODS = (
    "discard_dead_letter",
    "get_dead_letter",
    "list_dead_letters",
    "replay_dead_letter",
)
# The gateway's readiness report asks every service for its health.
for _service in SERVICE_CLASSES:
    _extra = {"health", *(DEAD_LETTER_METHODS if _service in DEAD_LETTER_SERVICES else ())}
    RPC_CALLS["gateway"][_service] = tuple(sorted({*RPC_CALLS["gateway"][_service], *_extra}))


@dataclass
class Wiring:
    """What one service does on the broker, read from its class."""

    name: str
    serves_rpc: bool = False
    emits: tuple = ()
    # (source service, event type, method name, handler type)
    handles: list = field(default_factory=list)
    calls: dict = field(default_factory=dict)


def service_class(name):
    module, _, attribute = SERVICE_CLASSES[name].partition(":")
    return getattr(import_module(module), attribute)


def wiring_of(name, cls=None):
    """The service's entrypoints, RPC targets and emitted events."""
    from nameko.events import EventHandler
    from nameko.rpc import Rpc

    from services.chassis.messaging import EventDispatcher

    cls = cls or service_class(name)
    wiring = Wiring(name, calls=dict(RPC_CALLS.get(name, {})))
    for attribute in dir(cls):
        value = getattr(cls, attribute)
        if isinstance(value, EventDispatcher):
            wiring.emits = tuple(sorted(value.contract))
        for entrypoint in getattr(value, "nameko_entrypoints", ()):
            if isinstance(entrypoint, EventHandler):
                wiring.handles.append(
                    (
                        entrypoint.source_service,
                        entrypoint.event_type,
                        attribute,
                        entrypoint.handler_type,
                    )
                )
            elif isinstance(entrypoint, Rpc):
                wiring.serves_rpc = True
    return wiring


def _any(*patterns):
    patterns = sorted(set(patterns))
    return f"^({'|'.join(patterns)})$" if patterns else NOTHING


def _keys(names):
    return _any(*(re.escape(n) for n in names))


@dataclass
class Permissions:
    configure: str
    write: str
    read: str
    # {exchange: (write, read)}
    topics: dict


def service_permissions(wiring):
    """The broker permissions of one service (a ``Wiring``)."""
    from nameko.events import BROADCAST, SINGLETON

    name = re.escape(wiring.name)
    events = rf"{name}\.events"
    retry = rf"{name}\.retry"
    dead_letters = rf"{name}\.dead-letters"
    rpc_queue = rf"rpc-{name}"
    reply_queue = rf"rpc\.reply-{name}-{REPLY_KEY}"

    handler_queues, sources = [], {}
    for source, event_type, method, handler_type in wiring.handles:
        base = re.escape(f"evt-{source}-{event_type}")
        if handler_type == SINGLETON:
            queue = base
        else:
            queue = base + re.escape(f"--{wiring.name}.{method}")
            if handler_type == BROADCAST:
                queue += "-[0-9a-f]+"
        handler_queues.append(queue + r"(\.backoff-[0-9]+)?")
        sources.setdefault(source, set()).add(event_type)
    listened = [rf"{re.escape(source)}\.events" for source in sources]

    queues = list(handler_queues)
    exchanges, bound_from = [], list(listened)
    if wiring.serves_rpc or wiring.calls:
        exchanges.append(RPC_EXCHANGE)
        bound_from.append(RPC_EXCHANGE)
    if wiring.serves_rpc:
        queues.append(rpc_queue)
    if wiring.calls:
        queues.append(reply_queue)
    if wiring.emits:
        exchanges.append(events)
    if wiring.handles:
        exchanges.append(retry)
        bound_from.append(retry)
        queues.append(dead_letters)

    calls = [f"{target}.{method}" for target, methods in wiring.calls.items() for method in methods]
    rpc_write = [re.escape(c) for c in calls]
    rpc_read = []
    if wiring.serves_rpc:
        rpc_write.append(REPLY_KEY)
        rpc_read.append(re.escape(f"{wiring.name}.*"))
    if wiring.calls:
        rpc_read.append(REPLY_KEY)
    topics = {RPC_EXCHANGE: (_any(*rpc_write), _any(*rpc_read))}
    if wiring.emits or wiring.name in sources:
        topics[f"{wiring.name}.events"] = (_keys(wiring.emits), _keys(sources.get(wiring.name, ())))
    for source, event_types in sources.items():
        if source != wiring.name:
            topics[f"{source}.events"] = (NOTHING, _keys(event_types))
    return Permissions(
        configure=_any(*exchanges, *listened, *queues),
        write=_any(*exchanges, *queues),
        read=_any(*bound_from, *queues),
        topics=topics,
    )


def gateway_permissions():
    """RPC calls: its own reply queues, the methods in ``RPC_CALLS["gateway"]``;
    events: its own exclusive queues, bound to the events in ``GATEWAY_EVENTS``
    (read only: it publishes no event)."""
    calls = [f"{t}.{m}" for t, methods in RPC_CALLS["gateway"].items() for m in methods]
    event_queues = [GATEWAY_EVENT_QUEUE.format(source=re.escape(s)) for s in GATEWAY_EVENTS]
    sources = [rf"{re.escape(source)}\.events" for source in GATEWAY_EVENTS]
    resources = _any(re.escape(RPC_EXCHANGE), GATEWAY_REPLY_QUEUE, *event_queues)
    topics = {RPC_EXCHANGE: (_keys(calls), _any(REPLY_KEY))}
    for source, event_types in GATEWAY_EVENTS.items():
        topics[f"{source}.events"] = (NOTHING, _keys(event_types))
    return Permissions(
        # Declaring the events exchanges it listens to (as a service's handlers
        # do) lets it bind before their first event; it never publishes there.
        configure=_any(re.escape(RPC_EXCHANGE), GATEWAY_REPLY_QUEUE, *event_queues, *sources),
        write=resources,
        read=_any(re.escape(RPC_EXCHANGE), GATEWAY_REPLY_QUEUE, *event_queues, *sources),
        topics=topics,
    )


def integration_permissions():
    """Outside consumers: their own ``integration.*`` queues and exchanges (for
    their own records and parked messages), bound to the public events
    exchanges, which they may read and never publish to."""
    own = r"integration\..*"
    public = [rf"{re.escape(name)}\.events" for name in SERVICE_CLASSES]
    return Permissions(
        configure=_any(own),
        write=_any(own),
        read=_any(own, *public),
        topics={f"{name}.events": (NOTHING, ".*") for name in SERVICE_CLASSES},
    )


def all_permissions():
    """``{principal: Permissions}`` for every broker principal."""
    permissions = {name: service_permissions(wiring_of(name)) for name in SERVICE_CLASSES}
    permissions["gateway"] = gateway_permissions()
    permissions["integration"] = integration_permissions()
    assert set(permissions) == set(BROKER_PRINCIPALS), "a principal has no permissions"
    return permissions


def password_hash(password):
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def operator_user(name, password):
    """The operator as a definitions entry (an administrator)."""
    return {
        "name": name,
        "password_hash": password_hash(password),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": ["administrator"],
    }


def definitions(config, vhost, operator=None):
    """The ``import_definitions`` document: the vhost, the operator's full rights
    on it (if named), and every principal's user, permissions and topic permissions."""
    users, permissions, topics = [], [], []
    if operator:
        permissions.append(
            {"user": operator, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
        )
    for principal, rights in all_permissions().items():
        password = config["amqp"]["passwords"][principal]
        if not password:
            raise ConfigError(f"amqp.passwords.{principal}", "is empty (set it in the environment)")
        user = broker_user(config, principal)
        users.append(
            {
                "name": user,
                "password_hash": password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
        )
        permissions.append(
            {
                "user": user,
                "vhost": vhost,
                "configure": rights.configure,
                "write": rights.write,
                "read": rights.read,
            }
        )
        for exchange, (write, read) in sorted(rights.topics.items()):
            topics.append(
                {"user": user, "vhost": vhost, "exchange": exchange, "write": write, "read": read}
            )
    return {
        "vhosts": [{"name": vhost}],
        "users": users,
        "permissions": permissions,
        "topic_permissions": topics,
    }
