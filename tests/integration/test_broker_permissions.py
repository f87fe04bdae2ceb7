"""Least privilege on the broker: each principal can do what it needs, and
RabbitMQ itself refuses (ACCESS_REFUSED) what it must not do.

Plain pika with each principal's own credentials against the run's vhost (the
users and permissions ``agora setup`` creates: ``agora/broker.py``)."""

import json
import uuid
from urllib.parse import unquote, urlsplit

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from agora.broker import SERVICE_CLASSES
from gateway.events import queue_name
from services.chassis.config import amqp_uri

pytestmark = pytest.mark.integration

SERVICES = tuple(SERVICE_CLASSES)
EVENT_EXCHANGES = tuple(f"{name}.events" for name in SERVICES)
INTEGRATION_QUEUE = f"integration.perm-{uuid.uuid4().hex[:8]}"
# Queues this module declares, removed when it ends: the run's vhost is shared
# with the other modules, whose services must find them as Nameko declares them.
PROBE_QUEUES = (
    "rpc-auth",
    "rpc-catalog",
    "rpc-billing",
    "evt-orders-order_created--inventory.on_order_created",
    "billing.dead-letters",
    INTEGRATION_QUEUE,
)


def parameters(uri):
    parts = urlsplit(uri)
    return pika.ConnectionParameters(
        host=parts.hostname,
        port=parts.port or 5672,
        virtual_host=unquote(parts.path[1:]),
        credentials=pika.PlainCredentials(unquote(parts.username), unquote(parts.password)),
        heartbeat=0,
        connection_attempts=3,
    )


class Session:
    """One principal's connection: ``run(action)`` on a fresh channel in confirm mode."""

    def __init__(self, uri):
        self.connection = pika.BlockingConnection(parameters(uri))

    def run(self, action):
        channel = self.connection.channel()
        channel.confirm_delivery()
        result = action(channel)
        if channel.is_open:
            channel.close()
        return result

    def refused(self, action):
        """True when the broker closes the channel with ACCESS_REFUSED (403)."""
        with pytest.raises(ChannelClosedByBroker) as caught:
            self.run(action)
        assert caught.value.reply_code == 403, caught.value
        return "ACCESS_REFUSED" in caught.value.reply_text

    def close(self):
        self.connection.close()


@pytest.fixture(scope="module")
def as_principal(config, rabbit_vhost):
    """``as_principal("catalog")``: a session with that principal's own broker user."""
    sessions = []

    def connect(principal):
        session = Session(amqp_uri(config, principal))
        sessions.append(session)
        return session

    # The exchanges exist, as the running platform declares them (as the operator here).
    operator = connect(None)

    def declare(channel):
        channel.exchange_declare("nameko-rpc", "topic", durable=True)
        for exchange in EVENT_EXCHANGES:
            channel.exchange_declare(exchange, "topic", durable=True)
        channel.queue_declare("rpc-auth", durable=True)
        channel.queue_bind("rpc-auth", "nameko-rpc", "auth.*")

    operator.run(declare)
    yield connect
    for session in sessions[1:]:
        session.close()

    def remove_probe_queues(channel):
        for queue in PROBE_QUEUES:
            channel.queue_delete(queue)

    operator.run(remove_probe_queues)
    operator.close()


def publish(exchange, routing_key, body=b"{}", keep=False):
    # The broker checks permissions when it takes the message; with a TTL of 0 it
    # then drops it unless a consumer takes it at once, so no probe is left in a
    # durable queue for a later test's service to choke on (rpc-catalog is bound
    # to catalog.*, and every module shares the run's vhost).
    properties = pika.BasicProperties(delivery_mode=2, expiration=None if keep else "0")

    def action(channel):
        channel.basic_publish(exchange, routing_key, body, properties)

    return action


def envelope(event_type):
    return json.dumps(
        {"event_id": str(uuid.uuid4()), "type": event_type, "version": 1, "data": {}}
    ).encode()


# --- what each principal needs ---------------------------------------------------------------


def test_each_service_serves_its_rpc_queue_and_emits_its_own_events(as_principal):
    for name, event in (("catalog", "product_created"), ("billing", "payment_succeeded")):
        session = as_principal(name)

        def serve(channel, name=name):
            channel.queue_declare(f"rpc-{name}", durable=True)
            channel.queue_bind(f"rpc-{name}", "nameko-rpc", f"{name}.*")
            channel.basic_consume(f"rpc-{name}", lambda *args: None)

        session.run(serve)
        session.run(publish(f"{name}.events", event, envelope(f"{name}.{event}")))


def test_a_service_calls_what_it_calls_and_answers_replies(as_principal):
    orders = as_principal("orders")
    orders.run(publish("nameko-rpc", "catalog.get_product"))
    # A reply goes to the caller's reply queue id, whoever the caller is.
    as_principal("catalog").run(publish("nameko-rpc", str(uuid.uuid4())))


def test_the_gateway_calls_the_public_methods(as_principal):
    gateway = as_principal("gateway")
    gateway.run(publish("nameko-rpc", "auth.issue_token"))
    gateway.run(publish("nameko-rpc", "orders.create_order"))

    def reply_queue(channel):
        reply_id = str(uuid.uuid4())
        name = f"rpc.reply-gateway-{reply_id}"
        channel.queue_declare(name, exclusive=True, auto_delete=True)
        channel.queue_bind(name, "nameko-rpc", reply_id)
        channel.basic_consume(name, lambda *args: None)

    gateway.run(reply_queue)


def test_the_gateway_consumes_catalog_product_events_on_its_own_queue(as_principal):
    gateway = as_principal("gateway")
    queue = queue_name("catalog")

    def subscribe(channel):
        channel.exchange_declare("catalog.events", "topic", durable=True)
        channel.queue_declare(queue, exclusive=True, auto_delete=True)
        channel.queue_bind(queue, "catalog.events", "product_created")
        channel.queue_bind(queue, "catalog.events", "product_updated")
        as_principal("catalog").run(
            publish("catalog.events", "product_updated", b'{"n": 2}', keep=True)
        )
        _method, _properties, body = channel.basic_get(queue, auto_ack=True)
        channel.basic_consume(queue, lambda *args: None, auto_ack=True)
        return body

    assert gateway.run(subscribe) == b'{"n": 2}'


def test_the_gateway_binds_only_the_catalog_events_it_consumes(as_principal):
    gateway = as_principal("gateway")

    def bind(exchange, routing_key, queue=None):
        def action(channel):
            name = queue or queue_name("catalog")
            channel.queue_declare(name, exclusive=True, auto_delete=True)
            channel.queue_bind(name, exchange, routing_key)

        return action

    assert gateway.refused(bind("catalog.events", "#"))
    assert gateway.refused(bind("orders.events", "order_created"))
    assert gateway.refused(bind("catalog.events", "product_created", queue="gateway.snoop"))
    assert gateway.refused(publish("catalog.events", "product_updated"))


def test_the_integration_user_reads_public_events_on_its_own_queue(as_principal):
    integration = as_principal("integration")
    queue = INTEGRATION_QUEUE

    def subscribe(channel):
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, "orders.events", "order_confirmed")
        channel.queue_bind(queue, "billing.events", "#")
        channel.basic_consume(queue, lambda *args: None)

    integration.run(subscribe)
    as_principal("orders").run(publish("orders.events", "order_confirmed", b'{"n": 1}', keep=True))
    got = integration.run(lambda channel: channel.basic_get(queue, auto_ack=True))
    assert got[2] == b'{"n": 1}'
    integration.run(lambda channel: channel.queue_delete(queue))


# --- what each principal must not do ---------------------------------------------------------


def test_a_service_cannot_call_what_it_does_not_call(as_principal):
    # The forged-token attack of issue 9: only the gateway asks auth for tokens.
    assert as_principal("catalog").refused(publish("nameko-rpc", "auth.issue_token"))
    assert as_principal("orders").refused(publish("nameko-rpc", "billing.refund_payment"))
    assert as_principal("notifications").refused(publish("nameko-rpc", "users.set_roles"))


@pytest.mark.parametrize("name", [s for s in SERVICES if s != "billing"])
def test_no_other_service_can_emit_payment_succeeded(as_principal, name):
    forged = publish("billing.events", "payment_succeeded", envelope("billing.payment_succeeded"))
    assert as_principal(name).refused(forged)


def test_a_service_emits_only_the_events_of_its_own_contract(as_principal):
    assert as_principal("billing").refused(publish("billing.events", "order_confirmed"))


def test_no_service_reaches_a_queue_through_the_default_exchange(as_principal):
    # The default exchange routes to any queue by name: a forged event straight
    # into another service's handler queue.
    handler_queue = "evt-billing-payment_succeeded--orders.on_payment_succeeded"
    assert as_principal("inventory").refused(publish("", handler_queue))
    assert as_principal("gateway").refused(publish("", "rpc-billing"))


def test_a_service_binds_only_the_events_it_handles(as_principal):
    def eavesdrop(channel):
        channel.queue_declare("evt-billing-payment_succeeded--inventory.snoop", durable=True)

    assert as_principal("inventory").refused(eavesdrop)

    def bind_other_key(channel):
        name = "evt-orders-order_created--inventory.on_order_created"
        channel.queue_declare(name, durable=True)
        channel.queue_bind(name, "orders.events", "payment_requested")

    assert as_principal("inventory").refused(bind_other_key)


def test_a_service_cannot_take_another_services_rpc_queue(as_principal):
    assert as_principal("catalog").refused(
        lambda channel: channel.basic_consume("rpc-auth", lambda *args: None)
    )


def test_only_a_service_itself_reads_and_replays_its_dead_letters(as_principal):
    """/v1/ops/dead-letters asks the service (DeadLetterAdmin): neither the
    gateway nor another service may read a service's dead letters."""
    queue = "billing.dead-letters"
    handler_queue = "evt-orders-payment_requested--billing.on_payment_requested"

    def read(channel):
        channel.queue_declare(queue, durable=True)
        channel.basic_get(queue, auto_ack=False)
        # A replay goes through the service's own retry exchange, to the handler queue.
        channel.exchange_declare("billing.retry", "direct", durable=True)

    billing = as_principal("billing")
    billing.run(read)
    billing.run(publish("billing.retry", handler_queue))
    for other in ("gateway", "orders"):
        assert as_principal(other).refused(lambda channel: channel.basic_get(queue)), other
    assert as_principal("orders").refused(publish("billing.retry", handler_queue))


@pytest.mark.parametrize("exchange", EVENT_EXCHANGES)
def test_the_gateway_cannot_publish_events(as_principal, exchange):
    assert as_principal("gateway").refused(publish(exchange, "anything"))


def test_the_integration_user_cannot_publish_or_take_rpc(as_principal):
    integration = as_principal("integration")
    assert integration.refused(publish("nameko-rpc", "auth.issue_token"))
    assert integration.refused(publish("orders.events", "order_confirmed"))
    assert integration.refused(publish("", "rpc-auth"))
    assert integration.refused(lambda channel: channel.basic_consume("rpc-auth", lambda *a: None))
    assert integration.refused(
        lambda channel: channel.queue_declare("not-integration", durable=True)
    )
    assert integration.refused(
        lambda channel: channel.exchange_declare("orders.events", "topic", durable=True)
    )
