"""Every event the platform emitted during the end-to-end run matches the
AsyncAPI document (docs/asyncapi.yaml). Runs last: the session's event tap
(conftest.event_tap) has by then seen every flow the other e2e tests drove."""

import json

import pytest
from jsonschema import Draft202012Validator
from kombu import Connection, Queue

from agora import asyncapi

pytestmark = pytest.mark.e2e

# The saga's events, which the e2e flows must all have produced.
SAGA_EVENTS = {
    "orders.order_created",
    "orders.payment_requested",
    "orders.order_paid",
    "orders.order_confirmed",
    "orders.order_rejected",
    "orders.order_payment_failed",
    "orders.order_cancelled",
    "orders.order_expired",
    "inventory.stock_reserved",
    "inventory.reservation_rejected",
    "inventory.reservation_committed",
    "inventory.reservation_released",
    "inventory.stock_changed",
    "billing.payment_succeeded",
    "billing.payment_failed",
    "billing.receipt_issued",
    "billing.refund_issued",
    "billing.dispute_opened",
    "billing.dispute_resolved",
    "notifications.notification_sent",
    "catalog.product_created",
    "users.user_registered",
}


def drain(platform, queue_name):
    messages = []
    with Connection(platform.config["amqp"]["uri"]) as connection:
        channel = connection.channel()
        queue = Queue(queue_name, durable=True)(channel)
        while True:
            message = queue.get(no_ack=True)
            if message is None:
                break
            messages.append(message)
        queue.delete()
    return messages


def test_every_emitted_event_matches_the_asyncapi_document(platform, event_tap):
    schemas = asyncapi.message_schemas(asyncapi.load())
    validators = {key: Draft202012Validator(schema) for key, schema in schemas.items()}
    messages = drain(platform, event_tap)
    assert messages, "the tap saw no events"
    seen, problems = {}, []
    for message in messages:
        envelope = json.loads(message.body)
        key = envelope.get("type")
        exchange = message.delivery_info["exchange"]
        routing_key = message.delivery_info["routing_key"]
        if key not in validators:
            problems.append(f"{exchange}/{routing_key}: undocumented type {key!r}")
            continue
        service, name = key.split(".", 1)
        if (exchange, routing_key) != (f"{service}.events", name):
            problems.append(f"{key} published to {exchange}/{routing_key}")
        # Poison messages the reliability tests published by hand are not emitted events.
        if message.headers and message.headers.get("x-agora-e2e-poison"):
            continue
        errors = [e.message for e in validators[key].iter_errors(envelope)]
        if errors:
            problems.append(f"{key} {envelope.get('event_id')}: {errors[:3]}")
        seen[key] = seen.get(key, 0) + 1
    assert not problems, "\n".join(problems[:20])
    missing = SAGA_EVENTS - set(seen)
    assert not missing, f"never emitted during the e2e run: {sorted(missing)}"
