"""Billing rules without I/O: money, charge decisions, refunds, disputes, receipts, contracts."""

import datetime
import types
import uuid

import pytest

from services.billing import domain, schemas
from services.chassis.errors import Conflict, ValidationError
from services.chassis.schemas import validate

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=datetime.UTC)
ORDER_ID = "5b0d7c1e-3f0a-4e43-9d5c-0c2f7d3b9a11"
USER_ID = "9e1f4a2b-6c3d-4e5f-8a7b-1c2d3e4f5a6b"


def money(amount, currency="EUR"):
    return {"amount": amount, "currency": currency}


def line(quantity=2, unit=500):
    return {
        "product_id": "0b7f4a3e-2d1c-4b5a-9e8f-7a6b5c4d3e2f",
        "sku": "MUG-1",
        "name": "Mug",
        "quantity": quantity,
        "unit_price": money(unit),
        "line_total": money(unit * quantity),
    }


def request_data(**overrides):
    data = {
        "order_id": ORDER_ID,
        "user_id": USER_ID,
        "amount": money(1000),
        "items": [line()],
    }
    data.update(overrides)
    return data


def payment(**overrides):
    values = {
        **domain.new_payment(domain.payment_id_for(ORDER_ID), request_data(), NOW),
        "failure_code": None,
        "failure_reason": None,
        "provider_charge_id": None,
    }
    values.update(overrides)
    return types.SimpleNamespace(**values)


def captured(**overrides):
    return payment(**{"status": domain.SUCCEEDED, "provider_charge_id": "ch_1", **overrides})


def dispute(amount, status=domain.DISPUTE_OPEN, **overrides):
    values = {
        "id": uuid.uuid4(),
        "amount": amount,
        "reason": "fraudulent",
        "status": status,
        "created_at": NOW,
        "resolved_at": None if status == domain.DISPUTE_OPEN else NOW,
    }
    values.update(overrides)
    return types.SimpleNamespace(**values)


def details(schema, payload):
    with pytest.raises(ValidationError) as info:
        validate(schema, payload)
    return info.value.details


# --- money -------------------------------------------------------------------


def test_money_round_trips_and_keeps_whole_floats_whole():
    assert domain.Money.from_dict(money(5)).to_dict() == money(5)
    assert domain.Money.from_dict({"amount": 5.0, "currency": "EUR"}).amount == 5


@pytest.mark.parametrize(
    "amount, currency",
    [(-1, "EUR"), (10**9 + 1, "EUR"), (1.5, "EUR"), (True, "EUR"), (1, "eur"), (1, None)],
)
def test_money_rejects_bad_amounts_and_currencies(amount, currency):
    with pytest.raises(ValueError):
        domain.Money(amount, currency)


# --- ids -----------------------------------------------------------------------


def test_payment_id_is_the_same_for_every_spelling_of_an_order():
    first = domain.payment_id_for(ORDER_ID)
    assert domain.payment_id_for(ORDER_ID.upper()) == first
    assert domain.payment_id_for(uuid.UUID(ORDER_ID)) == first
    assert domain.payment_id_for(str(uuid.uuid4())) != first
    assert str(first) == str(first).lower()


def test_refund_ids_depend_on_payment_and_key():
    pid = domain.payment_id_for(ORDER_ID)
    assert domain.refund_id_for(pid, "client:a") == domain.refund_id_for(pid, "client:a")
    assert domain.refund_id_for(pid, "client:a") != domain.refund_id_for(pid, "client:b")
    other = domain.payment_id_for(str(uuid.uuid4()))
    assert domain.refund_id_for(pid, "client:a") != domain.refund_id_for(other, "client:a")


def test_client_keys_can_never_be_billings_own():
    assert domain.client_refund_key(None) is None
    assert domain.client_refund_key("billing:order-closed") != domain.CLOSING_REFUND_KEY
    assert domain.client_refund_key("k") == "client:k"


def test_canonical_id():
    assert domain.canonical_id(ORDER_ID.upper()) == ORDER_ID
    assert domain.canonical_id("nope") is None
    assert domain.canonical_id(5) is None


# --- charging --------------------------------------------------------------------


def test_new_payment_is_pending_with_nothing_refunded():
    values = domain.new_payment(uuid.uuid4(), request_data(amount=money(1234, "USD")), NOW)
    assert values["status"] == domain.PENDING
    assert (values["amount"], values["currency"]) == (1234, "USD")
    assert values["refunded_amount"] == 0 and values["attempts"] == 0
    assert values["order_id"] == uuid.UUID(ORDER_ID)
    assert values["created_at"] == values["updated_at"] == NOW


def test_tombstone_is_voided_without_amount():
    stone = types.SimpleNamespace(
        **domain.tombstone(uuid.uuid4(), ORDER_ID, USER_ID, NOW), provider_charge_id=None
    )
    assert stone.status == domain.VOIDED and stone.amount is None and stone.currency is None
    assert domain.is_tombstone(stone)
    assert not domain.may_charge(stone)
    # Once the late request's amount is recorded it is a (visible) voided payment.
    stone.amount, stone.currency = 1000, "EUR"
    assert not domain.is_tombstone(stone)


@pytest.mark.parametrize(
    "status, charge_id, allowed",
    [
        (domain.PENDING, None, True),
        (domain.PENDING, "ch_1", False),
        (domain.SUCCEEDED, "ch_1", False),
        (domain.FAILED, None, False),
        (domain.VOIDED, None, False),
        (domain.REFUNDED, "ch_1", False),
        (domain.PARTIALLY_REFUNDED, "ch_1", False),
    ],
)
def test_only_a_pending_uncharged_payment_is_charged(status, charge_id, allowed):
    assert domain.may_charge(payment(status=status, provider_charge_id=charge_id)) is allowed


def test_backoff_doubles_from_the_base():
    assert domain.backoff_schedule(0.5, 3) == [0.5, 1.0]
    assert domain.backoff_schedule(0.1, 1) == []
    assert domain.backoff_schedule(0.1, 0) == []
    assert domain.backoff_delay(0.25, 3) == 2.0


def test_failure_reason_mentions_retries_only_for_transient_failures():
    assert domain.failure_reason("timeout", "no answer", 3) == "no answer (after 3 attempts)"
    assert domain.failure_reason("card_declined", "declined (x)", 1) == "declined (x)"
    assert domain.failure_reason("processing_error", "", 1) == "processing_error"
    assert len(domain.failure_reason("card_declined", "x" * 900, 1)) == domain.REASON_MAX


# --- refunds -------------------------------------------------------------------


def test_refundable_is_what_is_neither_refunded_nor_held():
    assert domain.refundable(captured()) == 1000
    assert domain.refundable(captured(refunded_amount=300)) == 700
    held = [dispute(200), dispute(100, domain.DISPUTE_LOST), dispute(400, domain.DISPUTE_WON)]
    assert domain.refundable(captured(refunded_amount=300), held) == 400
    assert domain.refundable(payment(status=domain.FAILED)) == 0
    assert domain.refundable(captured(status=domain.REFUNDED, refunded_amount=1000)) == 0


def test_refund_amount_defaults_to_the_remainder():
    assert domain.refund_amount(captured(refunded_amount=250), [], None) == domain.Money(750, "EUR")
    assert domain.refund_amount(captured(), [], money(1)) == domain.Money(1, "EUR")
    assert domain.refund_amount(captured(), [], money(1000)).amount == 1000


def test_refund_over_the_remainder_is_a_conflict():
    with pytest.raises(Conflict) as info:
        domain.refund_amount(captured(refunded_amount=600), [], money(401))
    assert info.value.details["refundable"] == "400"
    with pytest.raises(Conflict):
        domain.refund_amount(captured(), [dispute(1000)], None)


@pytest.mark.parametrize("status", [domain.FAILED, domain.VOIDED, domain.REFUNDED, domain.PENDING])
def test_only_captured_payments_are_refunded(status):
    with pytest.raises(Conflict) as info:
        domain.refund_amount(payment(status=status), [], None)
    assert info.value.details == {"status": status}


def test_refund_in_another_currency_is_invalid():
    with pytest.raises(ValidationError) as info:
        domain.refund_amount(captured(), [], money(10, "USD"))
    assert "amount.currency" in info.value.details


def test_status_after_refund():
    assert domain.status_after_refund(captured(refunded_amount=1)) == domain.PARTIALLY_REFUNDED
    assert domain.status_after_refund(captured(refunded_amount=1000)) == domain.REFUNDED


def test_a_replayed_refund_matches_on_amount_and_reason():
    stored = types.SimpleNamespace(amount=300, reason="damaged")
    pay = captured()
    assert domain.same_refund_request(pay, stored, money(300), "damaged")
    assert domain.same_refund_request(pay, stored, None, "damaged")
    assert not domain.same_refund_request(pay, stored, money(301), "damaged")
    assert not domain.same_refund_request(pay, stored, money(300, "USD"), "damaged")
    assert not domain.same_refund_request(pay, stored, money(300), "other")


# --- disputes ------------------------------------------------------------------


def test_dispute_amount_defaults_to_the_unrefunded_amount():
    pay = captured(status=domain.PARTIALLY_REFUNDED, refunded_amount=400)
    assert domain.dispute_amount(pay, [], None) == domain.Money(600, "EUR")
    assert domain.dispute_amount(pay, [], money(50)).amount == 50
    # A lost dispute's money is gone already; a won one's is back.
    earlier = [dispute(100, domain.DISPUTE_LOST), dispute(200, domain.DISPUTE_WON)]
    assert domain.dispute_amount(pay, earlier, None).amount == 500


@pytest.mark.parametrize("status", [domain.FAILED, domain.VOIDED, domain.REFUNDED, domain.PENDING])
def test_only_captured_payments_are_disputed(status):
    with pytest.raises(Conflict):
        domain.dispute_amount(payment(status=status), [], None)


def test_one_open_dispute_at_a_time_and_never_over_the_remainder():
    with pytest.raises(Conflict):
        domain.dispute_amount(captured(), [dispute(10)], None)
    with pytest.raises(Conflict):
        domain.dispute_amount(captured(refunded_amount=900), [], money(101))
    with pytest.raises(ValidationError):
        domain.dispute_amount(captured(), [], money(10, "GBP"))


def test_only_open_disputes_are_resolved():
    domain.check_resolvable(dispute(10))
    for status in (domain.DISPUTE_WON, domain.DISPUTE_LOST):
        with pytest.raises(Conflict) as info:
            domain.check_resolvable(dispute(10, status))
        assert info.value.details == {"status": status}


# --- receipts and views --------------------------------------------------------


def test_receipt_numbers_are_readable_and_ordered():
    assert domain.receipt_number(2026, 123) == "R-2026-000123"
    assert domain.receipt_number(2026, 1234567) == "R-2026-1234567"
    validate(schemas.RECEIPT["properties"]["number"], domain.receipt_number(2026, 1))


def receipt_row(pay):
    return types.SimpleNamespace(
        id=uuid.uuid4(),
        number="R-2026-000001",
        issued_at=NOW,
        body=domain.receipt_body(pay, [line()]),
    )


def test_payment_view_matches_the_contract():
    pay = captured(status=domain.PARTIALLY_REFUNDED, refunded_amount=300)
    refund = types.SimpleNamespace(id=uuid.uuid4(), amount=300, reason="damaged", created_at=NOW)
    view = domain.payment_view(pay, [refund], [dispute(200)], receipt_row(pay))
    validate(schemas.PAYMENT, view)
    assert view["refunded"] == money(300)
    assert view["refunds"][0]["amount"] == money(300)
    assert view["disputes"][0]["resolved_at"] is None
    assert view["receipt"]["amount"] == money(1000)
    assert view["created_at"] == "2026-03-04T05:06:07.890000Z"
    assert view["failure"] is None


def test_failed_payment_view_has_the_failure():
    pay = payment(status=domain.FAILED, failure_code="timeout", failure_reason="slow", attempts=3)
    view = domain.payment_view(pay)
    validate(schemas.PAYMENT, view)
    assert view["failure"] == {"code": "timeout", "reason": "slow"}
    assert view["receipt"] is None and view["refunds"] == [] and view["attempts"] == 3


# --- event payloads against EVENTS ----------------------------------------------


def event_ok(name, data):
    validate(schemas.EVENTS[name]["payload"], data)
    return data


def test_every_event_payload_matches_its_contract():
    pay = captured(status=domain.PARTIALLY_REFUNDED, refunded_amount=300, attempts=1)
    event_ok("payment_succeeded", domain.payment_succeeded_event(pay))
    receipt = event_ok("receipt_issued", domain.receipt_issued_event(pay, receipt_row(pay)))
    assert receipt["items"] == [line()] and receipt["issued_at"].endswith("Z")
    refund = types.SimpleNamespace(id=uuid.uuid4(), amount=300, reason="order_cancelled")
    issued = event_ok("refund_issued", domain.refund_issued_event(pay, refund))
    assert issued["payment_status"] == domain.PARTIALLY_REFUNDED
    opened = dispute(200)
    event_ok("dispute_opened", domain.dispute_opened_event(pay, opened))
    opened.status = domain.DISPUTE_LOST
    resolved = event_ok("dispute_resolved", domain.dispute_resolved_event(pay, opened))
    assert resolved["outcome"] == "lost"
    failed = payment(status=domain.FAILED, failure_code="card_declined", failure_reason="no")
    failed.attempts = 1
    data = event_ok("payment_failed", domain.payment_failed_event(failed))
    assert set(data) == {
        "order_id",
        "payment_id",
        "user_id",
        "amount",
        "code",
        "reason",
        "attempts",
    }


def test_events_have_version_summary_and_payload():
    assert set(schemas.EVENTS) == {
        "payment_succeeded",
        "payment_failed",
        "receipt_issued",
        "refund_issued",
        "dispute_opened",
        "dispute_resolved",
    }
    for spec in schemas.EVENTS.values():
        assert spec["version"] == 1 and spec["summary"] and spec["payload"]["type"] == "object"


# --- RPC and consumed-event contracts ---------------------------------------------


def test_refund_request_amount_and_reason_are_optional():
    assert validate(schemas.REFUND_REQUEST, {}) == {}
    assert validate(schemas.REFUND_REQUEST, {"amount": money(1), "reason": "x"})


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"amount": money(0)}, "amount.amount"),
        ({"amount": {"amount": 1}}, "amount.currency"),
        ({"amount": money(1, "eur")}, "amount.currency"),
        ({"reason": ""}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"extra": 1}, "extra"),
    ],
)
def test_refund_request_names_the_broken_field(payload, field):
    assert field in details(schemas.REFUND_REQUEST, payload)


def test_dispute_request_needs_a_reason():
    assert details(schemas.DISPUTE_REQUEST, {}) == {"reason": "is required"}
    assert validate(schemas.DISPUTE_REQUEST, {"reason": "fraud", "amount": money(5)})


def test_dispute_resolution_is_won_or_lost():
    assert validate(schemas.DISPUTE_RESOLUTION, {"outcome": "won"})
    assert "outcome" in details(schemas.DISPUTE_RESOLUTION, {"outcome": "draw"})


@pytest.mark.parametrize(
    "key, ok", [("k", True), ("a b~!", True), ("", False), ("é", False), ("x" * 256, False)]
)
def test_refund_idempotency_key_is_printable_ascii(key, ok):
    if ok:
        validate(schemas.REFUND_KEY, {"idempotency_key": key})
    else:
        assert "idempotency_key" in details(schemas.REFUND_KEY, {"idempotency_key": key})


def test_payment_requested_contract_tolerates_new_fields_only():
    validate(schemas.PAYMENT_REQUESTED, request_data(extra="later"))
    # No token in the contract: billing reads it from orders over RPC.
    assert "payment_token" not in schemas.PAYMENT_REQUESTED["properties"]
    assert "amount" in details(schemas.PAYMENT_REQUESTED, request_data(amount=None))
    assert "order_id" in details(schemas.PAYMENT_REQUESTED, request_data(order_id="x"))
    validate(schemas.ORDER_CLOSED, {"order_id": ORDER_ID, "user_id": USER_ID, "reason": "x"})


def test_a_request_is_past_its_deadline_from_the_deadline_on():
    now = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)
    assert domain.past_deadline("2026-11-21T12:00:00.000000Z", now)
    assert domain.past_deadline("2026-11-21T11:59:59Z", now)
    assert not domain.past_deadline("2026-11-21T12:00:01Z", now)
    assert not domain.past_deadline(None, now)  # requests from before deadlines were sent
