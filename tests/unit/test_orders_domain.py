"""Orders rules without I/O: the saga's status machine, pricing, idempotency, cursors."""

import base64
import datetime
import itertools
import types
import uuid

import pytest

from services.chassis import cursors
from services.chassis.errors import CancellationWindowClosed, Conflict, ValidationError
from services.chassis.schemas import validate
from services.orders import domain, schemas

pytestmark = pytest.mark.unit

STATUSES = (
    "pending",
    "reserved",
    "paid",
    "confirmed",
    "rejected",
    "payment_failed",
    "cancelled",
    "expired",
)
TRIGGERS = (
    "inventory.stock_reserved",
    "inventory.reservation_rejected",
    "inventory.reservation_committed",
    "inventory.reservation_commit_failed",
    "inventory.reservation_released",
    "inventory.reservation_expired",
    "billing.payment_succeeded",
    "billing.payment_failed",
    "customer_cancel",
    "deadline",
)

# The saga as the contract states it, written out independently of domain.RULES:
# (status, trigger) -> (new status, events emitted, order reason). Anything else is ignored.
EXPECTED = {
    ("pending", "inventory.stock_reserved"): ("reserved", ["payment_requested"], None),
    ("pending", "inventory.reservation_rejected"): ("rejected", ["order_rejected"], "out_of_stock"),
    ("reserved", "billing.payment_succeeded"): ("paid", ["order_paid"], None),
    ("reserved", "billing.payment_failed"): (
        "payment_failed",
        ["order_payment_failed"],
        "card_declined",
    ),
    ("payment_failed", "inventory.reservation_released"): (
        "cancelled",
        ["order_cancelled"],
        "payment_failed",
    ),
    ("paid", "inventory.reservation_committed"): ("confirmed", ["order_confirmed"], None),
    ("paid", "inventory.reservation_commit_failed"): (
        "cancelled",
        ["order_cancelled"],
        "commit_failed",
    ),
    ("pending", "inventory.reservation_expired"): (
        "expired",
        ["order_expired"],
        "reservation_expired",
    ),
    ("reserved", "inventory.reservation_expired"): (
        "expired",
        ["order_expired"],
        "reservation_expired",
    ),
    ("pending", "customer_cancel"): ("cancelled", ["order_cancelled"], "customer"),
    ("reserved", "customer_cancel"): ("cancelled", ["order_cancelled"], "customer"),
    ("paid", "customer_cancel"): ("cancelled", ["order_cancelled"], "customer"),
    ("confirmed", "customer_cancel"): ("cancelled", ["order_cancelled"], "customer"),
    ("pending", "deadline"): ("expired", ["order_expired"], "deadline"),
    ("reserved", "deadline"): ("expired", ["order_expired"], "deadline"),
    ("paid", "deadline"): ("expired", ["order_expired"], "deadline"),
    ("payment_failed", "deadline"): ("cancelled", ["order_cancelled"], "payment_failed"),
}

USER = str(uuid.uuid4())
PRODUCT_A = str(uuid.uuid4())
PRODUCT_B = str(uuid.uuid4())
PAYMENT_ID = str(uuid.uuid4())

# What each incoming event carries (inventory's and billing's payloads).
EVENT_DATA = {
    "inventory.stock_reserved": {
        "reservation_id": str(uuid.uuid4()),
        "expires_at": "2030-01-01T00:00:00.000000Z",
        "lines": [{"sku": "MUG-1", "warehouse": "main", "quantity": 2}],
    },
    "inventory.reservation_rejected": {
        "shortages": [{"sku": "MUG-1", "requested": 2, "available": 1}],
    },
    "inventory.reservation_committed": {"reservation_id": str(uuid.uuid4())},
    "inventory.reservation_commit_failed": {"reason": "reservation expired"},
    "inventory.reservation_released": {"reservation_id": None, "reason": "payment_failed"},
    "inventory.reservation_expired": {"reservation_id": str(uuid.uuid4())},
    "billing.payment_succeeded": {
        "payment_id": PAYMENT_ID,
        "user_id": USER,
        "amount": {"amount": 2598, "currency": "EUR"},
    },
    "billing.payment_failed": {
        "payment_id": PAYMENT_ID,
        "user_id": USER,
        "amount": {"amount": 2598, "currency": "EUR"},
        "code": "card_declined",
        "reason": "the card was declined",
        "attempts": 1,
    },
    "customer_cancel": {},
    "deadline": {},
}

LINE = {
    "product_id": PRODUCT_A,
    "sku": "MUG-1",
    "name": "Mug",
    "quantity": 2,
    "unit_price": {"amount": 1299, "currency": "EUR"},
    "line_total": {"amount": 2598, "currency": "EUR"},
}


def order_in(status, **overrides):
    values = {
        "id": str(uuid.uuid4()),
        "user_id": USER,
        "status": status,
        "items": [LINE],
        "total": {"amount": 2598, "currency": "EUR"},
        "payment_id": PAYMENT_ID if status in ("paid", "confirmed", "payment_failed") else None,
        "reason": None,
    }
    values.update(overrides)
    return domain.OrderFacts(**values)


def details(call, *args):
    with pytest.raises(ValidationError) as info:
        call(*args)
    return info.value.details


# --- the status machine --------------------------------------------------------


def test_the_statuses_and_triggers_are_those_of_the_contract():
    assert domain.STATUSES == STATUSES
    assert set(domain.TRIGGERS) == set(TRIGGERS)
    assert set(domain.TRANSITIONS) == set(STATUSES)
    assert domain.TERMINAL == {"confirmed", "rejected", "cancelled", "expired"}
    assert set(domain.OPEN) == {"pending", "reserved", "paid", "payment_failed"}


@pytest.mark.parametrize("status, trigger", list(itertools.product(STATUSES, TRIGGERS)))
def test_every_status_and_trigger(status, trigger):
    """All 80 pairs: the decision is the contract's, or the trigger is ignored."""
    decision = domain.decide(status, trigger)
    expected = EXPECTED.get((status, trigger))
    if expected is None:
        assert decision is None
        assert domain.advance(order_in(status), trigger, EVENT_DATA[trigger]) is None
        return
    new_status, emitted, reason = expected
    assert decision.status == new_status
    assert list(decision.emit) == emitted
    assert new_status in domain.TRANSITIONS[status]

    before = order_in(status)
    outcome = domain.advance(before, trigger, EVENT_DATA[trigger])
    assert outcome.status == new_status
    assert outcome.reason == reason
    assert [name for name, _ in outcome.events] == emitted
    for name, payload in outcome.events:
        validate(schemas.EVENTS[name]["payload"], payload)
        assert payload["order_id"] == before.id and payload["user_id"] == USER
    # Billing reads the token while the order is reserved: it goes whenever the
    # order moves to any other status than pending or reserved.
    assert outcome.clear_token is (new_status not in ("pending", "reserved"))
    # No event carries it, whatever the order.
    assert all("payment_token" not in payload for _, payload in outcome.events)


def test_every_allowed_transition_is_reachable_and_nothing_else():
    used = {
        (status, decision.status)
        for trigger, by_status in domain.RULES.items()
        for status, decision in by_status.items()
    }
    allowed = {(s, t) for s, targets in domain.TRANSITIONS.items() for t in targets}
    assert used == allowed
    assert {(s, t) for (s, _), (t, _, _) in EXPECTED.items()} == allowed


def test_terminal_statuses_move_only_by_a_customer_cancelling_a_confirmed_order():
    for status in domain.TERMINAL:
        for trigger in TRIGGERS:
            decision = domain.decide(status, trigger)
            if (status, trigger) == ("confirmed", "customer_cancel"):
                assert decision.status == "cancelled"
            else:
                assert decision is None


def test_cancellable_statuses():
    assert domain.CANCELLABLE == {"pending", "reserved", "paid", "confirmed"}


@pytest.mark.parametrize("status, trigger", [("shipped", "deadline"), ("pending", "nope")])
def test_unknown_status_or_trigger_is_a_bug(status, trigger):
    with pytest.raises(ValueError):
        domain.decide(status, trigger)


def test_stock_reserved_requests_the_payment_without_the_token():
    outcome = domain.advance(order_in("pending"), "inventory.stock_reserved", {})
    ((name, payload),) = outcome.events
    assert name == "payment_requested"
    assert "payment_token" not in payload
    assert "payment_token" not in schemas.EVENTS["payment_requested"]["payload"]["properties"]
    assert payload["amount"] == {"amount": 2598, "currency": "EUR"}
    assert payload["items"] == [LINE]
    # Kept while reserved: billing reads it with get_payment_token.
    assert outcome.clear_token is False
    assert outcome.note is None


@pytest.mark.parametrize(
    "status, token, releases",
    [
        ("reserved", "tok_visa", True),
        ("reserved", None, False),
        ("pending", "tok_visa", False),
        ("paid", "tok_visa", False),
        ("cancelled", "tok_visa", False),
    ],
)
def test_only_a_reserved_order_gives_billing_its_token(status, token, releases):
    assert domain.releases_token(status, token) is releases


@pytest.mark.parametrize(
    "trigger",
    ["billing.payment_succeeded", "billing.payment_failed", "customer_cancel", "deadline"],
)
def test_a_reserved_order_drops_its_token_when_billing_answers_or_it_closes(trigger):
    outcome = domain.advance(order_in("reserved"), trigger, EVENT_DATA[trigger])
    assert outcome.clear_token is True


def test_rejection_carries_the_shortages():
    data = EVENT_DATA["inventory.reservation_rejected"]
    outcome = domain.advance(order_in("pending"), "inventory.reservation_rejected", data)
    ((_, payload),) = outcome.events
    assert payload["shortages"] == data["shortages"]
    assert payload["reason"] == "out_of_stock"


def test_a_rejection_keeps_the_shortages_and_names_them_in_its_history():
    data = EVENT_DATA["inventory.reservation_rejected"]
    outcome = domain.advance(order_in("pending"), "inventory.reservation_rejected", data)
    assert outcome.shortages == data["shortages"]
    expected = "; ".join(
        f"{s['sku']}: {s['requested']} requested, {s['available']} available"
        for s in data["shortages"]
    )
    assert outcome.note == f"out_of_stock: {expected}"
    # Other triggers leave the stored shortages alone.
    other = domain.advance(order_in("pending"), "inventory.stock_reserved", {})
    assert other.shortages is None


def test_the_order_view_names_the_lines_that_were_short():
    order = stored_order(
        status="rejected",
        reason="out_of_stock",
        shortages=[{"sku": "MUG-1", "requested": 2, "available": 1}],
    )
    view = domain.order_view(order, [stored_line()], [])
    validate(schemas.ORDER, view)
    assert view["shortages"] == [{"sku": "MUG-1", "name": "Mug", "requested": 2, "available": 1}]
    assert domain.order_view(stored_order(), [stored_line()], [])["shortages"] == []


def test_malformed_shortages_are_left_out():
    data = {"shortages": [{"sku": "X"}, "junk", {"sku": "Y", "requested": 1, "available": 0}]}
    outcome = domain.advance(order_in("pending"), "inventory.reservation_rejected", data)
    assert outcome.events[0][1]["shortages"] == [{"sku": "Y", "requested": 1, "available": 0}]


def test_payment_succeeded_records_the_payment():
    outcome = domain.advance(
        order_in("reserved"), "billing.payment_succeeded", {"payment_id": "p-1"}
    )
    assert outcome.payment_id == "p-1"
    assert outcome.events == [
        (
            "order_paid",
            {"order_id": outcome.events[0][1]["order_id"], "user_id": USER, "payment_id": "p-1"},
        )
    ]


def test_payment_failed_keeps_the_code_and_sends_the_reason():
    data = EVENT_DATA["billing.payment_failed"]
    outcome = domain.advance(order_in("reserved"), "billing.payment_failed", data)
    assert outcome.reason == "card_declined" and outcome.payment_id == PAYMENT_ID
    ((_, payload),) = outcome.events
    assert payload["reason"] == "the card was declined"
    assert payload["payment_id"] == PAYMENT_ID


def test_payment_failed_without_details_still_has_a_reason():
    outcome = domain.advance(order_in("reserved"), "billing.payment_failed", {})
    assert outcome.reason == "payment_failed"
    ((_, payload),) = outcome.events
    assert payload == {
        "order_id": payload["order_id"],
        "user_id": USER,
        "payment_id": None,
        "reason": "payment_failed",
    }
    validate(schemas.EVENTS["order_payment_failed"]["payload"], payload)


def test_confirmation_carries_lines_total_and_payment():
    outcome = domain.advance(order_in("paid"), "inventory.reservation_committed", {})
    ((_, payload),) = outcome.events
    assert payload["items"] == [LINE]
    assert payload["total"] == {"amount": 2598, "currency": "EUR"}
    assert payload["payment_id"] == PAYMENT_ID
    assert outcome.clear_token is True


@pytest.mark.parametrize(
    "status, trigger, reason",
    [
        ("payment_failed", "inventory.reservation_released", "payment_failed"),
        ("paid", "inventory.reservation_commit_failed", "commit_failed"),
        ("confirmed", "customer_cancel", "customer"),
        ("payment_failed", "deadline", "payment_failed"),
    ],
)
def test_cancellations_say_why_and_from_where(status, trigger, reason):
    outcome = domain.advance(order_in(status), trigger, EVENT_DATA[trigger])
    ((name, payload),) = outcome.events
    assert name == "order_cancelled"
    assert payload["reason"] == reason and payload["previous_status"] == status
    assert outcome.note == reason


@pytest.mark.parametrize("status", ["pending", "reserved", "paid"])
def test_expiry_says_from_where(status):
    outcome = domain.advance(order_in(status), "deadline")
    assert outcome.events[0][1]["previous_status"] == status
    assert outcome.reason == "deadline"


def test_a_transition_without_its_own_reason_keeps_the_orders():
    outcome = domain.advance(order_in("paid", reason="kept"), "inventory.reservation_committed")
    assert outcome.reason == "kept"
    assert outcome.note is None


def test_ignored_reason_names_the_event_and_the_status():
    note = domain.ignored_reason("billing.payment_succeeded", "cancelled")
    assert "billing.payment_succeeded" in note and "cancelled" in note


def test_trigger_of():
    assert domain.trigger_of("inventory", "stock_reserved") == domain.STOCK_RESERVED


def test_created_payload_matches_its_contract():
    order = order_in("pending")
    deadline = datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.UTC)
    payload = domain.created_payload(order, deadline)
    validate(schemas.EVENTS["order_created"]["payload"], payload)
    assert payload["deadline_at"] == "2030-01-01T12:00:00.000000Z"


def test_events_are_described():
    assert set(schemas.EVENTS) == {
        "order_created",
        "payment_requested",
        "order_paid",
        "order_confirmed",
        "order_rejected",
        "order_payment_failed",
        "order_cancelled",
        "order_expired",
    }
    for spec in schemas.EVENTS.values():
        assert spec["summary"]
        # payment_requested is at version 2: version 1 carried the payment token.
        assert spec["version"] == (2 if spec is schemas.EVENTS["payment_requested"] else 1)
        assert {"order_id", "user_id"} <= set(spec["payload"]["required"])
    emitted = {name for rules in domain.RULES.values() for d in rules.values() for name in d.emit}
    assert emitted | {"order_created"} == set(schemas.EVENTS)


def test_event_payload_refuses_unknown_events():
    with pytest.raises(ValueError):
        domain.event_payload("order_shipped", order_in("paid"), "paid")


# --- create: contract, limits, idempotency -----------------------------------------


def valid_payload(**overrides):
    payload = {
        "items": [{"product_id": PRODUCT_A, "quantity": 2}],
        "payment": {"token": "tok_visa"},
    }
    payload.update(overrides)
    return payload


def test_a_valid_payload_passes():
    assert validate(schemas.ORDER_CREATE, valid_payload())


@pytest.mark.parametrize(
    "payload, field",
    [
        (valid_payload(items=[]), "items"),
        (valid_payload(items=[{"product_id": "nope", "quantity": 1}]), "items.0.product_id"),
        (
            valid_payload(items=[{"product_id": PRODUCT_A.upper(), "quantity": 1}]),
            "items.0.product_id",
        ),
        (valid_payload(items=[{"product_id": PRODUCT_A, "quantity": 0}]), "items.0.quantity"),
        (valid_payload(items=[{"product_id": PRODUCT_A, "quantity": 1.5}]), "items.0.quantity"),
        (valid_payload(items=[{"product_id": PRODUCT_A}]), "items.0.quantity"),
        (valid_payload(items=[{"product_id": PRODUCT_A, "quantity": 1, "x": 1}]), "items.0.x"),
        (valid_payload(payment={"token": ""}), "payment.token"),
        (valid_payload(payment={"token": "t" * 201}), "payment.token"),
        (valid_payload(payment={"token": 5}), "payment.token"),
        (valid_payload(payment={}), "payment.token"),
        ({"items": [{"product_id": PRODUCT_A, "quantity": 1}]}, "payment"),
        (valid_payload(extra=True), "extra"),
    ],
)
def test_bad_payloads_name_the_field(payload, field):
    assert field in details(validate, schemas.ORDER_CREATE, payload)


def test_a_token_of_200_characters_passes():
    validate(schemas.ORDER_CREATE, valid_payload(payment={"token": "t" * 200}))


@pytest.mark.parametrize("key", ["k", "x" * 255, "order 42 / retry #1", "~!@"])
def test_idempotency_keys_that_pass(key):
    validate(schemas.CREATE_ARGS, {"user_id": USER, "idempotency_key": key})


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "nl\n", 5, None])
def test_idempotency_keys_that_fail(key):
    found = details(validate, schemas.CREATE_ARGS, {"user_id": USER, "idempotency_key": key})
    assert "idempotency_key" in found


def test_user_id_must_be_a_canonical_uuid():
    found = details(validate, schemas.CREATE_ARGS, {"user_id": "me", "idempotency_key": "k"})
    assert "user_id" in found


def test_limits_count_lines_and_quantities():
    items = [{"product_id": str(uuid.uuid4()), "quantity": 1} for _ in range(3)]
    assert domain.check_limits({"items": items}, max_lines=3, max_quantity=1) is None
    assert details(domain.check_limits, {"items": items}, 2, 1) == {
        "items": "must have at most 2 lines"
    }
    items[1]["quantity"] = 6
    assert details(domain.check_limits, {"items": items}, 3, 5) == {
        "items.1.quantity": "must be <= 5"
    }


def test_duplicate_products_are_refused_naming_both_items():
    items = [
        {"product_id": PRODUCT_A, "quantity": 1},
        {"product_id": PRODUCT_B, "quantity": 1},
        {"product_id": PRODUCT_A, "quantity": 2},
    ]
    found = details(domain.check_limits, {"items": items}, 50, 1000)
    assert list(found) == ["items.2.product_id"]
    assert "items.0.product_id" in found["items.2.product_id"]


def test_request_hash_is_canonical():
    one = valid_payload()
    reordered = {
        "payment": {"token": "tok_visa"},
        "items": [{"quantity": 2.0, "product_id": PRODUCT_A}],
    }
    assert domain.request_hash(one) == domain.request_hash(reordered)
    assert len(domain.request_hash(one)) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"items": [{"product_id": PRODUCT_A, "quantity": 3}]},
        {"items": [{"product_id": PRODUCT_B, "quantity": 2}]},
        {"payment": {"token": "tok_other"}},
    ],
)
def test_request_hash_changes_with_the_request(change):
    assert domain.request_hash(valid_payload()) != domain.request_hash(valid_payload(**change))


def product(product_id, amount=1299, currency="EUR", active=True):
    return {
        "id": product_id,
        "sku": f"SKU-{product_id[:4].upper()}",
        "name": "Thing",
        "price": {"amount": amount, "currency": currency},
        "active": active,
    }


def test_price_lines_multiplies_and_sums():
    items = [{"product_id": PRODUCT_A, "quantity": 2}, {"product_id": PRODUCT_B, "quantity": 1}]
    lines, total = domain.price_lines(
        items, {PRODUCT_A: product(PRODUCT_A, 1299), PRODUCT_B: product(PRODUCT_B, 500)}
    )
    assert [line["line_total"]["amount"] for line in lines] == [2598, 500]
    assert total == {"amount": 3098, "currency": "EUR"}
    for line in lines:
        validate(schemas.LINE, line)


def test_unknown_and_inactive_products_name_their_items():
    items = [
        {"product_id": PRODUCT_A, "quantity": 1},
        {"product_id": PRODUCT_B, "quantity": 1},
    ]
    found = details(
        domain.price_lines, items, {PRODUCT_A: None, PRODUCT_B: product(PRODUCT_B, active=False)}
    )
    assert found == {
        "items.0.product_id": "is not a known product",
        "items.1.product_id": "is not available",
    }


def test_lines_must_share_one_currency():
    items = [{"product_id": PRODUCT_A, "quantity": 1}, {"product_id": PRODUCT_B, "quantity": 1}]
    found = details(
        domain.price_lines,
        items,
        {PRODUCT_A: product(PRODUCT_A), PRODUCT_B: product(PRODUCT_B, currency="USD")},
    )
    assert found == {"items": "must all be priced in one currency, found EUR, USD"}


def test_a_total_above_the_money_bound_is_refused():
    items = [{"product_id": PRODUCT_A, "quantity": 2}]
    found = details(
        domain.price_lines, items, {PRODUCT_A: product(PRODUCT_A, amount=domain.MAX_AMOUNT)}
    )
    assert found == {"items": f"total must be <= {domain.MAX_AMOUNT}"}


def test_new_order_is_pending_with_its_deadline():
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    payload = valid_payload()
    lines, total = domain.price_lines(payload["items"], {PRODUCT_A: product(PRODUCT_A)})
    values = domain.new_order(USER, payload, "key-1", lines, total, now, 300)
    assert values["status"] == "pending"
    assert values["deadline_at"] == now + datetime.timedelta(seconds=300)
    assert values["payment_token"] == "tok_visa"
    assert values["request_hash"] == domain.request_hash(payload)
    assert values["total_amount"] == 2598 and values["currency"] == "EUR"
    (line,) = domain.new_lines(lines)
    assert line["line_no"] == 1 and line["quantity"] == 2 and line["unit_price_amount"] == 1299


# --- views ----------------------------------------------------------------------


def stored_order(**overrides):
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    values = {
        "id": uuid.uuid4(),
        "user_id": uuid.UUID(USER),
        "status": "pending",
        "total_amount": 2598,
        "currency": "EUR",
        "payment_id": None,
        "payment_token": "tok_visa",
        "reason": None,
        "shortages": None,
        "created_at": now,
        "updated_at": now,
        "deadline_at": now + datetime.timedelta(seconds=300),
    }
    values.update(overrides)
    return types.SimpleNamespace(**values)


def stored_line():
    return types.SimpleNamespace(
        product_id=uuid.UUID(PRODUCT_A),
        sku="MUG-1",
        name="Mug",
        quantity=2,
        unit_price_amount=1299,
        currency="EUR",
    )


def test_order_view_matches_the_contract_and_hides_the_token():
    order = stored_order()
    history = [types.SimpleNamespace(status="pending", at=order.created_at, reason=None)]
    view = domain.order_view(order, [stored_line()], history)
    validate(schemas.ORDER, view)
    assert "payment_token" not in view and "tok_visa" not in str(view)
    assert view["items"] == [LINE]
    assert view["history"] == [
        {
            "status": "pending",
            "at": "2030-01-01T00:00:00.000000Z",
            "reason": None,
            "message": "Order placed",
        }
    ]
    assert view["cancellation_reason"] is None
    assert "operator_history" not in view


# --- what the customer and operators read of the history ---------------------------

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


def entries(*rows):
    """History rows (status, note), a second apart, with an event id from the second on."""
    return [
        types.SimpleNamespace(
            status=status,
            reason=note,
            at=T0 + datetime.timedelta(seconds=n),
            event_id=uuid.UUID(int=n) if n else None,
        )
        for n, (status, note) in enumerate(rows)
    ]


def test_a_declined_card_reads_as_such_and_operator_notes_stay_with_operators():
    history = entries(
        ("pending", None),
        ("reserved", None),
        ("payment_failed", "card_declined"),
        ("cancelled", "payment_failed"),
        ("cancelled", "ignored inventory.reservation_released in status cancelled"),
    )
    order = stored_order(status="cancelled", reason="payment_failed")
    view = domain.order_view(order, [stored_line()], history)
    validate(schemas.ORDER, view)
    assert [(e["status"], e["reason"], e["message"]) for e in view["history"]] == [
        ("pending", None, "Order placed"),
        ("reserved", None, "Stock reserved"),
        ("payment_failed", "card_declined", "Payment failed: your card was declined"),
        ("cancelled", "payment_failed", "Cancelled: your card was declined"),
    ]
    assert "ignored" not in str(view)
    assert view["cancellation_reason"] == "Your card was declined"

    operator = domain.order_view(order, [stored_line()], history, operator=True)
    validate(schemas.ORDER, operator)
    assert operator["history"] == view["history"]
    assert [e["note"] for e in operator["operator_history"]] == [e.reason for e in history]
    assert operator["operator_history"][4] == {
        "status": "cancelled",
        "at": "2030-01-01T00:00:04.000000Z",
        "note": "ignored inventory.reservation_released in status cancelled",
        "event_id": str(uuid.UUID(int=4)),
    }


@pytest.mark.parametrize(
    "rows, messages, cancellation",
    [
        (
            [("pending", None), ("reserved", None), ("paid", None), ("confirmed", None)],
            ["Order placed", "Stock reserved", "Payment received", "Order confirmed"],
            None,
        ),
        (
            [("pending", None), ("reserved", None), ("paid", None), ("cancelled", "customer")],
            [
                "Order placed",
                "Stock reserved",
                "Payment received",
                "Cancelled: you cancelled the order; your payment is refunded",
            ],
            "You cancelled the order; your payment is refunded",
        ),
        (
            [
                ("pending", None),
                ("reserved", None),
                ("paid", None),
                ("confirmed", None),
                ("cancelled", "customer"),
            ],
            [
                "Order placed",
                "Stock reserved",
                "Payment received",
                "Order confirmed",
                "Cancelled: you cancelled the order; your payment is refunded",
            ],
            "You cancelled the order; your payment is refunded",
        ),
        (
            [("pending", None), ("reserved", None), ("paid", None), ("expired", "deadline")],
            [
                "Order placed",
                "Stock reserved",
                "Payment received",
                "Expired: the order could not be completed in time; your payment is refunded",
            ],
            None,
        ),
        (
            [("pending", None), ("rejected", "out_of_stock: MUG-1: 2 requested, 1 available")],
            ["Order placed", "Not enough stock: the order could not be placed"],
            None,
        ),
        (
            [("pending", None), ("reserved", None), ("expired", "deadline")],
            ["Order placed", "Stock reserved", "Expired: the order could not be completed in time"],
            None,
        ),
        (
            [
                ("pending", None),
                ("reserved", None),
                ("payment_failed", "processing_error"),
                ("payment_failed", "ignored inventory.stock_reserved in status payment_failed"),
                ("cancelled", "payment_failed"),
            ],
            [
                "Order placed",
                "Stock reserved",
                "Payment failed: the payment could not be processed",
                "Cancelled: the payment could not be processed",
            ],
            "The payment could not be processed",
        ),
        (
            [("pending", None), ("reserved", None), ("paid", None), ("cancelled", "commit_failed")],
            [
                "Order placed",
                "Stock reserved",
                "Payment received",
                "Cancelled: the items could not be set aside; your payment is refunded",
            ],
            "The items could not be set aside; your payment is refunded",
        ),
        (
            [("pending", None), ("reserved", None), ("payment_failed", "new_code")],
            ["Order placed", "Stock reserved", "Payment failed: the payment did not go through"],
            None,
        ),
    ],
)
def test_each_status_change_has_a_customer_message(rows, messages, cancellation):
    history = entries(*rows)
    assert [e["message"] for e in domain.customer_history(history)] == messages
    assert domain.cancellation_reason(rows[-1][0], history) == cancellation


def test_refunds_read_as_such_after_the_status_changes():
    refund = {
        "amount": {"amount": 500, "currency": "EUR"},
        "reason": "damaged",
        "payment_status": "partially_refunded",
    }
    partial = domain.refund_note(refund)
    assert partial == "partially_refunded: 500 EUR (damaged)"
    full = domain.refund_note({**refund, "payment_status": "refunded"})
    history = entries(
        ("pending", None),
        ("reserved", None),
        ("paid", None),
        ("confirmed", None),
        ("confirmed", partial),
        ("cancelled", "customer"),
        ("cancelled", full),
        ("cancelled", "ignored inventory.reservation_released in status cancelled"),
    )
    customer = domain.customer_history(history)
    assert [(e["status"], e["reason"], e["message"]) for e in customer[3:]] == [
        ("confirmed", None, "Order confirmed"),
        ("confirmed", "partially_refunded", "Partly refunded"),
        ("cancelled", "customer", "Cancelled: you cancelled the order; your payment is refunded"),
        ("cancelled", "refunded", "Refunded"),
    ]
    assert domain.cancellation_reason("cancelled", history) == (
        "You cancelled the order; your payment is refunded"
    )
    assert domain.operator_history(history)[4]["note"] == partial


def test_a_rejection_keeps_its_reason_code_and_the_shortages_for_operators():
    note = "out_of_stock: MUG-1: 2 requested, 1 available"
    history = entries(("pending", None), ("rejected", note))
    assert domain.customer_history(history)[-1]["reason"] == "out_of_stock"
    assert domain.operator_history(history)[-1]["note"] == note
    assert domain.reason_code(None) is None and domain.reason_code("customer") == "customer"


def test_facts_of_a_stored_order():
    order = stored_order(status="paid", payment_id="p-1")
    found = domain.facts(order, [stored_line()])
    assert found.id == str(order.id) and found.user_id == USER
    assert found.items == [LINE] and found.payment_id == "p-1"


# --- list arguments and cursors ---------------------------------------------------

LISTING = domain.listing_cursors(cursors.signing_key("unit-test-orders-cursor-key"))


def test_list_query_contract():
    validate(schemas.LIST_QUERY, {"user_id": USER, "limit": 100, "status": "paid"})
    found = details(
        validate,
        schemas.LIST_QUERY,
        {"user_id": USER, "limit": 0, "status": "shipped", "cursor": ""},
    )
    assert set(found) == {"limit", "status", "cursor"}


def test_cursor_round_trip():
    moment = datetime.datetime(2030, 5, 1, 12, 30, 15, 123456, tzinfo=datetime.UTC)
    order_id = uuid.uuid4()
    assert LISTING.decode(LISTING.encode(moment, order_id)) == (moment, order_id)


def test_cursor_of_a_naive_time_is_utc():
    moment = datetime.datetime(2030, 5, 1, 12, 30)
    created_at, _ = LISTING.decode(LISTING.encode(moment, uuid.uuid4()))
    assert created_at == moment.replace(tzinfo=datetime.UTC)


def forged(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        None,
        "",
        5,
        "x" * 201,
        "!!!",
        forged("1.5.x.y"),
        forged(f"2.5.{uuid.uuid4()}.0000000000000000"),
        forged(f"1.5.{uuid.uuid4()}.0000000000000000"),
        forged("1.5"),
    ],
)
def test_bad_cursors_are_refused(cursor):
    assert details(LISTING.decode, cursor) == {"cursor": "is invalid"}


def test_an_edited_cursor_is_refused():
    cursor = LISTING.encode(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC), uuid.uuid4())
    text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    version, micros, order_id, mac = text.split(".")
    edited = forged(f"{version}.{int(micros) + 1}.{order_id}.{mac}")
    assert details(LISTING.decode, edited) == {"cursor": "is invalid"}


def test_page_splits_and_points_at_the_last_row():
    moment = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    rows = [types.SimpleNamespace(created_at=moment, id=uuid.uuid4()) for _ in range(3)]
    items, cursor = LISTING.page(rows, 2)
    assert items == rows[:2]
    assert LISTING.decode(cursor) == (moment, rows[1].id)
    assert LISTING.page(rows, 3) == (rows, None)


# --- the cancellation window -----------------------------------------------------

CONFIRMED_AT = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
WINDOW = 1800


def test_only_a_confirmed_order_has_a_cancellation_window():
    windowed = {s for s, d in domain.RULES[domain.CUSTOMER_CANCEL].items() if d.within_window}
    assert windowed == {"confirmed"}
    assert not any(
        decision.within_window
        for trigger, by_status in domain.RULES.items()
        if trigger != domain.CUSTOMER_CANCEL
        for decision in by_status.values()
    )


@pytest.mark.parametrize("seconds", [0, 1, WINDOW - 1])
def test_a_confirmed_order_may_be_cancelled_within_the_window(seconds):
    now = CONFIRMED_AT + datetime.timedelta(seconds=seconds)
    assert domain.check_customer_cancel("confirmed", CONFIRMED_AT, now, WINDOW) is None


@pytest.mark.parametrize("seconds", [WINDOW, WINDOW + 1, 86400 * 365])
def test_after_the_window_the_customer_gets_cancellation_window_closed(seconds):
    now = CONFIRMED_AT + datetime.timedelta(seconds=seconds)
    with pytest.raises(CancellationWindowClosed) as info:
        domain.check_customer_cancel("confirmed", CONFIRMED_AT, now, WINDOW)
    error = info.value
    assert (error.status, error.code) == (409, "cancellation_window_closed")
    assert error.details == {
        "status": "confirmed",
        "cancellation_window": str(WINDOW),
        "closed_at": "2030-01-01T12:30:00.000000Z",
    }


def test_a_zero_window_or_an_unknown_confirmation_closes_it():
    with pytest.raises(CancellationWindowClosed):
        domain.check_customer_cancel("confirmed", CONFIRMED_AT, CONFIRMED_AT, 0)
    with pytest.raises(CancellationWindowClosed):
        domain.check_customer_cancel("confirmed", None, CONFIRMED_AT, WINDOW)


@pytest.mark.parametrize("status", ["pending", "reserved", "paid"])
def test_an_order_not_yet_confirmed_may_be_cancelled_whenever(status):
    years_later = CONFIRMED_AT + datetime.timedelta(days=365)
    assert domain.check_customer_cancel(status, None, years_later, 0) is None


@pytest.mark.parametrize("status", ["rejected", "payment_failed", "cancelled", "expired"])
def test_other_statuses_are_a_plain_conflict(status):
    with pytest.raises(Conflict) as info:
        domain.check_customer_cancel(status, None, CONFIRMED_AT, WINDOW)
    assert not isinstance(info.value, CancellationWindowClosed)
    assert info.value.details == {"status": status}


def test_confirmed_at_is_the_confirmation_not_a_later_ignored_event():
    entry = types.SimpleNamespace
    history = [
        entry(status="pending", at=CONFIRMED_AT - datetime.timedelta(minutes=3)),
        entry(status="confirmed", at=CONFIRMED_AT),
        entry(status="confirmed", at=CONFIRMED_AT + datetime.timedelta(minutes=1)),
    ]
    assert domain.confirmed_at(history) == CONFIRMED_AT
    assert domain.confirmed_at(history[:1]) is None
