"""How a dead letter is summarised and named (services/chassis/deadletter.py):
pure functions over a message's body and headers, no broker."""

import datetime
import json
import types
import uuid

import pytest

from services.chassis.deadletter import ATTEMPTS, ERROR, FAILED_AT, ORIGIN_QUEUE, letter_summary
from services.chassis.schemas import DEAD_LETTER, DEAD_LETTER_ID_PATTERN, pattern_matches, validate

pytestmark = pytest.mark.unit


def message(body, headers=None):
    return types.SimpleNamespace(body=body, headers=headers)


def test_a_dead_event_is_named_by_its_event_id_with_where_and_why_it_failed():
    event_id = str(uuid.uuid4())
    envelope = {"event_id": event_id, "type": "orders.payment_requested", "data": {}}
    headers = {
        ORIGIN_QUEUE: "evt-orders-payment_requested--billing.on_payment_requested",
        ATTEMPTS: 3,
        ERROR: "ValidationError: invalid payment_requested",
        FAILED_AT: "2030-01-01T00:00:00Z",
        # RabbitMQ's record of the delay queues holds timestamps.
        "x-death": [{"time": datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)}],
    }
    summary = letter_summary("billing", message(json.dumps(envelope).encode(), headers))
    assert summary == {
        "service": "billing",
        "event_id": event_id,
        "type": "orders.payment_requested",
        "queue": headers[ORIGIN_QUEUE],
        "attempts": 3,
        "error": headers[ERROR],
        "failed_at": "2030-01-01T00:00:00Z",
    }
    validate(DEAD_LETTER, summary)


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"not": "an envelope"}', b"[1, 2]", b"", b'{"event_id": "a/../b c"}'],
)
def test_a_message_that_is_no_event_gets_a_stable_name_from_its_body(body):
    first = letter_summary("orders", message(body))
    again = letter_summary("orders", message(body))
    assert first["event_id"] == again["event_id"]
    assert first["event_id"].startswith("body-") and len(first["event_id"]) == 37
    assert pattern_matches(DEAD_LETTER_ID_PATTERN, first["event_id"])
    assert first["type"] is None and first["attempts"] is None
    other = letter_summary("orders", message(body + b" "))
    assert other["event_id"] != first["event_id"]
    validate(DEAD_LETTER, first)
