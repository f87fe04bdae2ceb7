"""The billing service in a real container: PostgreSQL, RabbitMQ, the simulated processor.

Handlers are driven by publishing ``orders.*`` envelopes; what billing emits is
observed by a listener service (and in billing's outbox); charges and refunds
are counted in the simulated processor's own ledger.
"""

import collections
import contextlib
import functools
import time
import uuid

import eventlet
import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.billing import domain, models, provider
from services.billing.domain import Money
from services.billing.schemas import EVENTS, PAYMENT, PAYMENT_PAGE
from services.billing.service import BillingService
from services.chassis.errors import Conflict, NotFound, Unavailable, ValidationError
from services.chassis.messaging import event_envelope, event_handler, rpc
from services.chassis.schemas import validate
from services.chassis.testing import call_entrypoint as call
from services.chassis.values import utcnow
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
# Its services' durable event queues stay out of other modules' way.
OWN_VHOST = True

CLAIMERS, CLAIM_ROUNDS = 8, 100  # ~4% of rounds collided on the primary key before the fix
WAIT = 15  # seconds: the longest any one step may take (a timed-out charge takes ~3.5s)


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def billing_db(service_engine):
    return service_engine("billing")


# order id -> the payment token orders holds for it (no event carries it).
TOKENS = {}


class OrdersStandIn:
    """Answers billing's ``orders.get_payment_token`` from TOKENS, as orders does:
    the token of a reserved order, ``Conflict`` once the order holds none."""

    name = "orders"

    @rpc
    def get_payment_token(self, order_id):
        token = TOKENS.get(order_id)
        if token is None:
            raise Conflict("an order that is cancelled holds no payment token", {"status": "x"})
        return {"payment_token": token}


@pytest.fixture
def orders_stand_in(container_factory, service_config):
    container = container_factory(OrdersStandIn, service_config("orders"))
    container.start()
    return container


@pytest.fixture
def billing(start_service, billing_db, orders_stand_in):
    return start_service(BillingService)


received = collections.defaultdict(list)


class BillingListener:
    """Records every billing event by order id (no ``db``: nothing to deduplicate)."""

    name = "billing_test_listener"

    def _record(self, envelope):
        received[envelope["data"]["order_id"]].append(envelope)

    @event_handler("billing", "payment_succeeded")
    def on_payment_succeeded(self, envelope):
        self._record(envelope)

    @event_handler("billing", "payment_failed")
    def on_payment_failed(self, envelope):
        self._record(envelope)

    @event_handler("billing", "receipt_issued")
    def on_receipt_issued(self, envelope):
        self._record(envelope)

    @event_handler("billing", "refund_issued")
    def on_refund_issued(self, envelope):
        self._record(envelope)

    @event_handler("billing", "dispute_opened")
    def on_dispute_opened(self, envelope):
        self._record(envelope)

    @event_handler("billing", "dispute_resolved")
    def on_dispute_resolved(self, envelope):
        self._record(envelope)


@pytest.fixture
def listener(container_factory, service_config):
    container = container_factory(BillingListener, service_config(BillingListener.name))
    container.start()
    return container


@pytest.fixture
def publish(publish_event):
    """``publish("payment_requested", data)``: an orders envelope on the broker."""
    return functools.partial(publish_event, "orders")


@pytest.fixture
def attempts(config):
    return config["services"]["billing"]["charge_attempts"]


# --- helpers ---------------------------------------------------------------------------


def money(amount, currency="EUR"):
    return {"amount": amount, "currency": currency}


def new_order(amount=1000, token="tok_visa"):
    """A payment_requested payload for a new order, whose ``token`` orders holds."""
    order_id = str(uuid.uuid4())
    TOKENS[order_id] = token
    return {
        "order_id": order_id,
        "user_id": str(uuid.uuid4()),
        "amount": money(amount),
        "items": [
            {
                "product_id": str(uuid.uuid4()),
                "sku": "MUG-1",
                "name": "Mug",
                "quantity": 2,
                "unit_price": money(amount // 2),
                "line_total": money(amount // 2 * 2),
            }
        ],
    }


def closed(order, **extra):
    """An order_cancelled / order_expired payload for ``order``."""
    return {"order_id": order["order_id"], "user_id": order["user_id"], **extra}


@contextlib.contextmanager
def handled(container, method, order_id, times=1):
    """Wait until ``method`` has finished ``times`` workers for ``order_id``;
    fail if any of them raised."""
    outcomes = []

    def done(worker_ctx, result, exc_info):
        event = worker_ctx.args[0] if worker_ctx.args else None
        if isinstance(event, dict) and event.get("data", {}).get("order_id") == order_id:
            outcomes.append(exc_info)
        return len(outcomes) >= times

    with entrypoint_waiter(container, method, timeout=WAIT, callback=done):
        yield outcomes
    assert outcomes == [None] * times, outcomes


def events_for(order_id, event_type, count=1):
    """Wait until the listener has ``count`` billing.<event_type> events for the order."""

    def probe():
        found = [e for e in received[order_id] if e["type"] == f"billing.{event_type}"]
        return found if len(found) >= count else None

    found = wait_until(probe, timeout=WAIT, what=f"{count} billing.{event_type} for {order_id}")
    for envelope in found:
        validate(EVENTS[event_type]["payload"], envelope["data"])
        assert envelope["version"] == EVENTS[event_type]["version"]
    return found


def outbox_types(engine, order_id):
    """Every event billing wrote to its outbox about the order, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT event_type FROM outbox_events "
                "WHERE envelope -> 'data' ->> 'order_id' = :order_id ORDER BY seq"
            ),
            {"order_id": order_id},
        )
        return [row.event_type for row in rows]


def ledger_charges(engine, payment_id):
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT * FROM simulated_charges WHERE idempotency_key = :key"),
            {"key": str(payment_id)},
        ).all()


def ledger_refunds(engine, charge_id):
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT * FROM simulated_refunds WHERE charge_id = :charge_id"),
            {"charge_id": charge_id},
        ).all()


def payment_row(engine, order_id):
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT * FROM payments WHERE order_id = :order_id"), {"order_id": order_id}
        ).first()


def payment_for(container, order_id):
    payment = call(container, "get_payment_for_order", order_id)
    validate(PAYMENT, payment)
    return payment


def request_payment(billing, publish, order):
    with handled(billing, "on_payment_requested", order["order_id"]):
        publish("payment_requested", order)
    return payment_for(billing, order["order_id"])


def charged(billing, publish, amount=1000):
    """A succeeded payment for a new order; returns (order, payment)."""
    order = new_order(amount)
    payment = request_payment(billing, publish, order)
    assert payment["status"] == "succeeded"
    return order, payment


# --- charging -----------------------------------------------------------------------------


def test_visa_charge_succeeds_with_a_receipt(billing, listener, publish, billing_db):
    order = new_order(1299 * 2)
    payment = request_payment(billing, publish, order)
    assert payment["status"] == "succeeded"
    assert payment["order_id"] == order["order_id"] and payment["user_id"] == order["user_id"]
    assert payment["amount"] == money(2598) and payment["refunded"] == money(0)
    assert payment["attempts"] == 1 and payment["failure"] is None
    receipt = payment["receipt"]
    assert receipt["number"].startswith("R-") and receipt["items"] == order["items"]
    assert receipt["amount"] == money(2598)
    assert call(billing, "get_payment", payment["id"]) == payment

    (succeeded,) = events_for(order["order_id"], "payment_succeeded")
    assert succeeded["data"] == {
        "order_id": order["order_id"],
        "payment_id": payment["id"],
        "user_id": order["user_id"],
        "amount": money(2598),
    }
    (issued,) = events_for(order["order_id"], "receipt_issued")
    assert issued["data"]["receipt_id"] == receipt["id"]
    assert issued["data"]["number"] == receipt["number"]
    assert issued["data"]["items"] == order["items"]
    assert issued["data"]["issued_at"] == receipt["issued_at"]
    # Both were written in the charge's one transaction.
    assert outbox_types(billing_db, order["order_id"]) == ["payment_succeeded", "receipt_issued"]

    (charge,) = ledger_charges(billing_db, payment["id"])
    # Charged with the token billing read from orders (the request had none).
    assert (charge.amount, charge.currency, charge.token) == (2598, "EUR", "tok_visa")
    with billing_db.connect() as conn:
        stored = conn.execute(text("SELECT envelope::text FROM outbox_events")).scalars().all()
    assert not any("tok_visa" in envelope for envelope in stored)


def test_an_order_that_holds_no_token_is_not_charged(billing, publish, billing_db):
    """The order closed while the request waited: orders has no token to give."""
    order = new_order()
    del TOKENS[order["order_id"]]
    payment = request_payment(billing, publish, order)
    assert payment["status"] == "voided" and payment["attempts"] == 0
    assert ledger_charges(billing_db, payment["id"]) == []
    assert outbox_types(billing_db, order["order_id"]) == []


def test_a_request_waits_for_orders_to_give_the_token(
    container_factory, start_service, billing_db, service_config, publish, config
):
    """Orders down: the request fails (retried with backoff, then dead-lettered),
    nothing is charged and nothing stays claimed."""
    billing = start_service(BillingService)
    order = new_order()
    failures = []

    def failed(worker_ctx, result, exc_info):
        event = worker_ctx.args[0]
        if event["data"]["order_id"] == order["order_id"] and exc_info is not None:
            failures.append(exc_info[1])
        return len(failures) >= config["events"]["max_attempts"]

    with entrypoint_waiter(billing, "on_payment_requested", timeout=WAIT * 2, callback=failed):
        publish("payment_requested", order)
    assert all(isinstance(error, Unavailable) for error in failures), failures
    assert payment_row(billing_db, order["order_id"]) is None


def test_receipt_numbers_are_unique_and_increasing(billing, publish):
    numbers = [charged(billing, publish)[1]["receipt"]["number"] for _ in range(3)]
    assert len(set(numbers)) == 3
    assert [int(n.rsplit("-", 1)[1]) for n in numbers] == sorted(
        int(n.rsplit("-", 1)[1]) for n in numbers
    )


def test_declined_card_fails_at_once(billing, listener, publish, billing_db):
    order = new_order(token="tok_chargeDeclined")
    payment = request_payment(billing, publish, order)
    assert payment["status"] == "failed" and payment["attempts"] == 1
    assert payment["failure"]["code"] == "card_declined"
    assert payment["receipt"] is None
    (failed,) = events_for(order["order_id"], "payment_failed")
    assert failed["data"]["code"] == "card_declined" and failed["data"]["attempts"] == 1
    assert failed["data"]["payment_id"] == payment["id"]
    assert failed["data"]["reason"] == payment["failure"]["reason"]
    assert ledger_charges(billing_db, payment["id"]) == []


def test_unknown_token_is_an_invalid_token_decline(billing, publish, billing_db):
    payment = request_payment(billing, publish, new_order(token="tok_nonsense"))
    assert payment["status"] == "failed" and payment["attempts"] == 1
    assert payment["failure"]["code"] == "card_declined"
    assert "invalid_token" in payment["failure"]["reason"]
    assert ledger_charges(billing_db, payment["id"]) == []


def test_processing_errors_are_retried_then_fail(billing, listener, publish, billing_db, attempts):
    order = new_order(token="tok_processingError")
    payment = request_payment(billing, publish, order)
    assert payment["status"] == "failed"
    assert payment["attempts"] == attempts
    assert payment["failure"]["code"] == "processing_error"
    assert f"after {attempts} attempts" in payment["failure"]["reason"]
    (failed,) = events_for(order["order_id"], "payment_failed")
    assert failed["data"]["code"] == "processing_error"
    assert failed["data"]["attempts"] == attempts
    assert ledger_charges(billing_db, payment["id"]) == []


def test_a_processor_that_never_answers_times_out(billing, listener, publish, config, attempts):
    order = new_order(token="tok_timeout")
    timeout = config["services"]["billing"]["provider_timeout"]
    started = time.monotonic()
    payment = request_payment(billing, publish, order)
    elapsed = time.monotonic() - started
    assert payment["status"] == "failed" and payment["attempts"] == attempts
    assert payment["failure"]["code"] == "timeout"
    # Each attempt was cut at the timeout (the processor would hang for longer).
    assert elapsed >= attempts * timeout
    (failed,) = events_for(order["order_id"], "payment_failed")
    assert failed["data"]["code"] == "timeout"


def test_duplicate_payment_requests_charge_once(billing, listener, publish, billing_db):
    order = new_order()
    envelope = event_envelope("orders", "payment_requested", order)
    # The same envelope twice (a redelivery) and the same request again under a
    # new event id (orders emitting it twice), all at once.
    with handled(billing, "on_payment_requested", order["order_id"], times=3):
        publish("payment_requested", order, envelope)
        publish("payment_requested", order, envelope)
        publish("payment_requested", order)
    payment = payment_for(billing, order["order_id"])
    assert payment["status"] == "succeeded" and payment["attempts"] == 1
    assert len(ledger_charges(billing_db, payment["id"])) == 1
    assert outbox_types(billing_db, order["order_id"]) == ["payment_succeeded", "receipt_issued"]
    events_for(order["order_id"], "payment_succeeded")


def test_a_payment_request_past_its_deadline_charges_nothing(billing, publish, billing_db):
    """Billing was down until after the order's deadline: the waiting request is
    voided, not charged (the order is expiring, a charge would only be refunded)."""
    order = {**new_order(), "deadline_at": "2020-01-01T00:00:00.000000Z"}
    with handled(billing, "on_payment_requested", order["order_id"]):
        publish("payment_requested", order)
    payment = payment_for(billing, order["order_id"])
    assert payment["status"] == "voided" and payment["attempts"] == 0
    assert ledger_charges(billing_db, payment["id"]) == []
    assert outbox_types(billing_db, order["order_id"]) == []


def test_a_payment_request_before_its_deadline_is_charged(billing, publish, billing_db):
    order = {**new_order(), "deadline_at": "2999-01-01T00:00:00.000000Z"}
    with handled(billing, "on_payment_requested", order["order_id"]):
        publish("payment_requested", order)
    assert payment_for(billing, order["order_id"])["status"] == "succeeded"


def test_a_charge_made_before_a_crash_is_not_made_again(billing, listener, publish, billing_db):
    """Billing charged, then died before committing: the redelivered request finds the
    processor's record under the same idempotency key (the payment id) and charges nothing."""
    order = new_order(700)
    sim = provider.SimulatedProcessor(billing_db, hang=5.0)
    payment_id = str(domain.payment_id_for(order["order_id"]))
    earlier = sim.charge(Money(700, "EUR"), "tok_visa", payment_id)
    assert payment_row(billing_db, order["order_id"]) is None  # nothing committed by billing

    payment = request_payment(billing, publish, order)
    assert payment["id"] == payment_id and payment["status"] == "succeeded"
    (charge,) = ledger_charges(billing_db, payment_id)
    assert charge.charge_id == earlier.id
    events_for(order["order_id"], "payment_succeeded")


def test_a_malformed_request_is_refused_and_charges_nothing(billing, publish, billing_db, config):
    order = new_order()
    bad = {**order, "amount": {"amount": -5, "currency": "EUR"}}
    failures = []

    def failed(worker_ctx, result, exc_info):
        event = worker_ctx.args[0]
        if event["data"]["order_id"] == order["order_id"] and exc_info is not None:
            failures.append(exc_info[1])
        # Retried with backoff, then dead-lettered: wait for the last delivery.
        return len(failures) >= config["events"]["max_attempts"]

    with entrypoint_waiter(billing, "on_payment_requested", timeout=WAIT, callback=failed):
        publish("payment_requested", bad)
    assert all(isinstance(error, ValidationError) for error in failures)
    assert "amount.amount" in failures[0].details
    assert payment_row(billing_db, order["order_id"]) is None


def test_a_failed_payment_is_not_charged_again(billing, publish, billing_db):
    order = new_order(token="tok_chargeDeclined")
    first = request_payment(billing, publish, order)
    TOKENS[order["order_id"]] = "tok_visa"
    retry = request_payment(billing, publish, order)
    assert retry == first and retry["status"] == "failed"
    assert ledger_charges(billing_db, first["id"]) == []


# --- orders closing -------------------------------------------------------------------------


def test_cancel_before_the_charge_voids_and_the_late_request_charges_nothing(
    billing, publish, billing_db
):
    order = new_order()
    with handled(billing, "on_order_cancelled", order["order_id"]):
        publish("order_cancelled", closed(order, reason="customer", previous_status="pending"))
    tombstone = payment_row(billing_db, order["order_id"])
    assert tombstone.status == "voided" and tombstone.amount is None
    with pytest.raises(NotFound):
        call(billing, "get_payment_for_order", order["order_id"])

    payment = request_payment(billing, publish, order)
    assert payment["status"] == "voided" and payment["attempts"] == 0
    assert payment["amount"] == order["amount"] and payment["receipt"] is None
    assert ledger_charges(billing_db, payment["id"]) == []
    assert outbox_types(billing_db, order["order_id"]) == []


def test_expiry_before_the_charge_voids_too(billing, publish, billing_db):
    order = new_order()
    with handled(billing, "on_order_expired", order["order_id"]):
        publish("order_expired", closed(order, previous_status="reserved"))
    payment = request_payment(billing, publish, order)
    assert payment["status"] == "voided"
    assert ledger_charges(billing_db, payment["id"]) == []


def test_cancel_after_the_charge_refunds_it_once(billing, listener, publish, billing_db):
    order, payment = charged(billing, publish, 2500)
    with handled(billing, "on_order_cancelled", order["order_id"]):
        publish("order_cancelled", closed(order, reason="customer", previous_status="confirmed"))
    (refund,) = events_for(order["order_id"], "refund_issued")
    assert refund["data"]["amount"] == money(2500)
    assert refund["data"]["reason"] == "order_cancelled"
    assert refund["data"]["payment_status"] == "refunded"
    assert refund["data"]["payment_id"] == payment["id"]
    after = payment_for(billing, order["order_id"])
    assert after["status"] == "refunded" and after["refunded"] == money(2500)
    assert [r["id"] for r in after["refunds"]] == [refund["data"]["refund_id"]]

    # The order expiring as well (or the cancel again) refunds nothing more.
    with handled(billing, "on_order_expired", order["order_id"]):
        publish("order_expired", closed(order, previous_status="cancelled"))
    with handled(billing, "on_order_cancelled", order["order_id"]):
        publish("order_cancelled", closed(order, reason="customer", previous_status="cancelled"))
    assert payment_for(billing, order["order_id"]) == after
    charge_id = ledger_charges(billing_db, payment["id"])[0].charge_id
    (provider_refund,) = ledger_refunds(billing_db, charge_id)
    assert provider_refund.amount == 2500


def test_expiry_after_a_partial_refund_refunds_the_rest(billing, listener, publish, billing_db):
    order, payment = charged(billing, publish, 1000)
    call(billing, "refund_payment", payment["id"], money(300), "damaged", None)
    with handled(billing, "on_order_expired", order["order_id"]):
        publish("order_expired", closed(order, previous_status="paid"))
    after = payment_for(billing, order["order_id"])
    assert after["status"] == "refunded" and after["refunded"] == money(1000)
    assert [(r["amount"]["amount"], r["reason"]) for r in after["refunds"]] == [
        (300, "damaged"),
        (700, "order_expired"),
    ]
    refunds = events_for(order["order_id"], "refund_issued", count=2)
    assert [e["data"]["payment_status"] for e in refunds] == ["partially_refunded", "refunded"]


def test_cancel_after_a_failed_payment_does_nothing(billing, publish, billing_db):
    order = new_order(token="tok_chargeDeclined")
    failed = request_payment(billing, publish, order)
    with handled(billing, "on_order_cancelled", order["order_id"]):
        publish("order_cancelled", closed(order, reason="payment_failed", previous_status="x"))
    assert payment_for(billing, order["order_id"]) == failed
    assert outbox_types(billing_db, order["order_id"]) == ["payment_failed"]


def test_request_and_cancel_racing_never_leave_money_taken(billing, publish, billing_db):
    """Whichever locks the order's payment first, the customer ends up not charged."""
    for _ in range(3):
        order = new_order()
        with handled(billing, "on_payment_requested", order["order_id"]):
            with handled(billing, "on_order_cancelled", order["order_id"]):
                publish("payment_requested", order)
                publish("order_cancelled", closed(order, reason="customer", previous_status="x"))
        payment = payment_for(billing, order["order_id"])
        charges = ledger_charges(billing_db, payment["id"])
        if payment["status"] == "voided":
            assert charges == []
        else:
            assert payment["status"] == "refunded"
            (charge,) = charges
            assert sum(r.amount for r in ledger_refunds(billing_db, charge.charge_id)) == 1000


def test_concurrent_claims_of_one_order_payment_all_succeed(billing_db):
    """The race behind the test above, run many times: payment requests and order
    closings claiming one order's payment at once each get the one row, and none
    fails on a unique index (the id and the order id both collide)."""
    pool = eventlet.GreenPool(CLAIMERS)
    for _ in range(CLAIM_ROUNDS):
        order = new_order()
        claims = list(
            pool.imap(functools.partial(claim_payment, billing_db, order), range(CLAIMERS))
        )
        assert {payment for payment, _ in claims} == {domain.payment_id_for(order["order_id"])}
        assert sum(created for _, created in claims) == 1


def claim_payment(engine, order, i):
    """Claim ``order``'s payment in a transaction of its own: a request or, for odd
    ``i``, a closing order's tombstone. Returns ``(payment id, created)``."""
    payment_id = domain.payment_id_for(order["order_id"])
    if i % 2:
        values = domain.tombstone(payment_id, order["order_id"], order["user_id"], utcnow())
    else:
        values = domain.new_payment(payment_id, order, utcnow())
    with Session(bind=engine) as session, session.begin():
        payment, created = models.claim_payment(session, values)
        return payment.id, created


# --- refunds (RPC) ----------------------------------------------------------------------------


def test_partial_then_full_refund(billing, listener, publish, billing_db):
    order, payment = charged(billing, publish, 1000)
    partial = call(billing, "refund_payment", payment["id"], money(300), "damaged", None)
    validate(PAYMENT, partial)
    assert partial["status"] == "partially_refunded" and partial["refunded"] == money(300)
    (first,) = partial["refunds"]
    assert first["amount"] == money(300) and first["reason"] == "damaged"

    full = call(billing, "refund_payment", payment["id"], None, "the rest", None)
    assert full["status"] == "refunded" and full["refunded"] == money(1000)
    assert [r["amount"]["amount"] for r in full["refunds"]] == [300, 700]

    issued = events_for(order["order_id"], "refund_issued", count=2)
    assert [e["data"]["amount"]["amount"] for e in issued] == [300, 700]
    assert [e["data"]["payment_status"] for e in issued] == ["partially_refunded", "refunded"]
    charge_id = ledger_charges(billing_db, payment["id"])[0].charge_id
    assert sorted(r.amount for r in ledger_refunds(billing_db, charge_id)) == [300, 700]

    with pytest.raises(Conflict) as info:
        call(billing, "refund_payment", payment["id"], None, "again", None)
    assert info.value.details == {"status": "refunded"}


def test_refund_over_the_remainder_is_a_conflict(billing, publish, billing_db):
    _, payment = charged(billing, publish, 1000)
    call(billing, "refund_payment", payment["id"], money(600), "part", None)
    with pytest.raises(Conflict) as info:
        call(billing, "refund_payment", payment["id"], money(401), "too much", None)
    assert info.value.details["refundable"] == "400"
    after = call(billing, "get_payment", payment["id"])
    assert after["refunded"] == money(600) and len(after["refunds"]) == 1


def test_refund_with_an_idempotency_key_refunds_once(billing, publish, billing_db):
    _, payment = charged(billing, publish, 1000)
    first = call(billing, "refund_payment", payment["id"], money(250), "dup", "key-1")
    again = call(billing, "refund_payment", payment["id"], money(250), "dup", "key-1")
    assert again == first and len(again["refunds"]) == 1
    with pytest.raises(Conflict) as info:
        call(billing, "refund_payment", payment["id"], money(100), "dup", "key-1")
    assert "idempotency_key" in info.value.details
    # Another key is another refund.
    other = call(billing, "refund_payment", payment["id"], money(250), "dup", "key-2")
    assert other["refunded"] == money(500)
    charge_id = ledger_charges(billing_db, payment["id"])[0].charge_id
    assert len(ledger_refunds(billing_db, charge_id)) == 2


def test_refund_arguments_are_validated(billing, publish):
    _, payment = charged(billing, publish, 1000)
    cases = [
        ((money(0), "x", None), "amount.amount"),
        ((money(10, "USD"), "x", None), "amount.currency"),
        (({"amount": "10", "currency": "EUR"}, "x", None), "amount.amount"),
        ((None, "", None), "reason"),
        ((None, "x", "é"), "idempotency_key"),
    ]
    for arguments, field in cases:
        with pytest.raises(ValidationError) as info:
            call(billing, "refund_payment", payment["id"], *arguments)
        assert field in info.value.details, arguments
    assert call(billing, "get_payment", payment["id"])["refunded"] == money(0)


def test_unknown_payments_are_not_found(billing, billing_db):
    for method, arguments in [
        ("get_payment", (str(uuid.uuid4()),)),
        ("get_payment", ("garbage",)),
        ("get_payment_for_order", (str(uuid.uuid4()),)),
        ("get_payment_for_order", (None,)),
        ("refund_payment", (str(uuid.uuid4()), None, "x", None)),
        ("open_dispute", (str(uuid.uuid4()), "fraud")),
        ("resolve_dispute", (str(uuid.uuid4()), str(uuid.uuid4()), "won")),
    ]:
        with pytest.raises(NotFound):
            call(billing, method, *arguments)


def test_failed_payments_cannot_be_refunded_or_disputed(billing, publish):
    payment = request_payment(billing, publish, new_order(token="tok_chargeDeclined"))
    with pytest.raises(Conflict):
        call(billing, "refund_payment", payment["id"], None, "x", None)
    with pytest.raises(Conflict):
        call(billing, "open_dispute", payment["id"], "fraud")


# --- disputes ---------------------------------------------------------------------------------


def test_dispute_opened_then_won(billing, listener, publish):
    order, payment = charged(billing, publish, 1000)
    call(billing, "refund_payment", payment["id"], money(200), "part", None)
    opened = call(billing, "open_dispute", payment["id"], "fraudulent")
    validate(PAYMENT, opened)
    (dispute,) = opened["disputes"]
    # The amount defaults to what is not refunded.
    assert dispute["amount"] == money(800) and dispute["status"] == "open"
    assert dispute["resolved_at"] is None
    # Money held by the bank cannot be refunded meanwhile, nor disputed twice.
    with pytest.raises(Conflict):
        call(billing, "refund_payment", payment["id"], None, "x", None)
    with pytest.raises(Conflict):
        call(billing, "open_dispute", payment["id"], "again", money(1))

    won = call(billing, "resolve_dispute", payment["id"], dispute["id"], "won")
    assert won["disputes"][0]["status"] == "won" and won["disputes"][0]["resolved_at"]
    assert won["status"] == "partially_refunded"
    with pytest.raises(Conflict) as info:
        call(billing, "resolve_dispute", payment["id"], dispute["id"], "lost")
    assert info.value.details == {"status": "won"}

    (event,) = events_for(order["order_id"], "dispute_opened")
    assert event["data"]["dispute_id"] == dispute["id"]
    assert event["data"]["amount"] == money(800) and event["data"]["reason"] == "fraudulent"
    (resolved,) = events_for(order["order_id"], "dispute_resolved")
    assert resolved["data"]["outcome"] == "won" and resolved["data"]["amount"] == money(800)


def test_a_lost_dispute_leaves_nothing_to_refund(billing, listener, publish, billing_db):
    order, payment = charged(billing, publish, 1000)
    opened = call(billing, "open_dispute", payment["id"], "not received", money(400))
    dispute_id = opened["disputes"][0]["id"]
    lost = call(billing, "resolve_dispute", payment["id"], dispute_id, "lost")
    assert lost["disputes"][0]["status"] == "lost"
    with pytest.raises(Conflict):
        call(billing, "resolve_dispute", payment["id"], dispute_id, "won")
    # Cancelling the order refunds only what the bank did not give back.
    with handled(billing, "on_order_cancelled", order["order_id"]):
        publish("order_cancelled", closed(order, reason="customer", previous_status="confirmed"))
    (refund,) = events_for(order["order_id"], "refund_issued")
    assert refund["data"]["amount"] == money(600)
    (resolved,) = events_for(order["order_id"], "dispute_resolved")
    assert resolved["data"]["outcome"] == "lost"


def test_invalid_dispute_requests(billing, publish):
    _, payment = charged(billing, publish, 1000)
    with pytest.raises(ValidationError) as info:
        call(billing, "open_dispute", payment["id"], "")
    assert "reason" in info.value.details
    with pytest.raises(Conflict):
        call(billing, "open_dispute", payment["id"], "too much", money(1001))
    opened = call(billing, "open_dispute", payment["id"], "fraud", money(10))
    dispute_id = opened["disputes"][0]["id"]
    with pytest.raises(ValidationError) as info:
        call(billing, "resolve_dispute", payment["id"], dispute_id, "draw")
    assert "outcome" in info.value.details
    with pytest.raises(NotFound):
        call(billing, "resolve_dispute", payment["id"], str(uuid.uuid4()), "won")
    # A dispute is resolved only through its own payment.
    _, other = charged(billing, publish, 1000)
    with pytest.raises(NotFound):
        call(billing, "resolve_dispute", other["id"], dispute_id, "won")


def test_a_refunded_payment_cannot_be_disputed(billing, publish):
    _, payment = charged(billing, publish, 1000)
    call(billing, "refund_payment", payment["id"], None, "all", None)
    with pytest.raises(Conflict) as info:
        call(billing, "open_dispute", payment["id"], "fraud")
    assert info.value.details == {"status": "refunded"}


# --- over the wire, health, the processor's ledger ------------------------------------------


def test_errors_cross_rpc_intact(billing, service_config):
    settings = service_config("tests")
    with ClusterRpcProxy({"AMQP_URI": settings["AMQP_URI"], "SERIALIZER": "json"}) as rpc:
        with pytest.raises(NotFound):
            rpc.billing.get_payment(str(uuid.uuid4()))
        with pytest.raises(ValidationError) as info:
            rpc.billing.refund_payment(str(uuid.uuid4()), money(-1), "x", None)
        assert "amount.amount" in info.value.details


def test_health_reports_database_and_relay(billing):
    report = call(billing, "health")
    assert report["service"] == "billing" and report["status"] == "ok"
    assert report["checks"]["db"] == "ok" and report["checks"]["dispatch"] == "ok"


def test_simulated_processor_ledger_is_idempotent(billing_db):
    sim = provider.SimulatedProcessor(billing_db, hang=5.0)
    key = f"test-{uuid.uuid4()}"
    first = sim.charge(Money(500, "EUR"), "tok_visa", key)
    assert first.status == "succeeded" and first.id.startswith("ch_sim_")
    assert sim.charge(Money(500, "EUR"), "tok_visa", key) == first
    with pytest.raises(provider.ProviderError) as info:
        sim.charge(Money(501, "EUR"), "tok_visa", key)
    assert not info.value.transient
    assert len(ledger_charges(billing_db, key)) == 1

    refund = sim.refund(first.id, Money(200, "EUR"), f"{key}-r1")
    assert sim.refund(first.id, Money(200, "EUR"), f"{key}-r1") == refund
    with pytest.raises(provider.ProviderError):
        sim.refund(first.id, Money(301, "EUR"), f"{key}-r2")
    with pytest.raises(provider.ProviderError):
        sim.refund(first.id, Money(10, "USD"), f"{key}-r3")
    with pytest.raises(provider.ProviderError):
        sim.refund("ch_sim_unknown", Money(1, "EUR"), f"{key}-r4")
    sim.refund(first.id, Money(300, "EUR"), f"{key}-r5")
    assert sorted(r.amount for r in ledger_refunds(billing_db, first.id)) == [200, 300]


# --- the payments list ------------------------------------------------------------------


def all_pages(billing, **query):
    """Every page of list_payments with ``query``, following next_cursor."""
    pages, cursor = [], None
    while True:
        page = call(billing, "list_payments", **query, cursor=cursor)
        validate(PAYMENT_PAGE, page)
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_every_payment_is_listed_newest_first_page_by_page(billing, publish):
    _, refunded = charged(billing, publish, amount=700)
    call(billing, "refund_payment", refunded["id"], None, "wrong size")
    declined = request_payment(billing, publish, new_order(token="tok_chargeDeclined"))
    _, latest = charged(billing, publish, amount=900)
    # A tombstone (an order closed before any charge) is no payment.
    tombstone = new_order()
    with handled(billing, "on_order_cancelled", tombstone["order_id"]):
        publish("order_cancelled", closed(tombstone))

    pages = all_pages(billing, limit=2)
    assert all(len(page["items"]) <= 2 for page in pages)
    listed = [payment for page in pages for payment in page["items"]]
    ids = [payment["id"] for payment in listed]
    assert len(ids) == len(set(ids))
    assert ids[:3] == [latest["id"], declined["id"], refunded["id"]]
    assert tombstone["order_id"] not in {payment["order_id"] for payment in listed}
    stamps = [(payment["created_at"], payment["id"]) for payment in listed]
    assert [s for s, _ in stamps] == sorted((s for s, _ in stamps), reverse=True)
    assert listed[2]["status"] == "refunded" and listed[2]["refunds"][0]["reason"] == "wrong size"
    assert listed[0]["receipt"] is not None

    failed = [p for page in all_pages(billing, status="failed") for p in page["items"]]
    assert failed[0]["id"] == declined["id"]
    assert {payment["status"] for payment in failed} == {"failed"}


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 101},
        {"status": "lost"},
        {"cursor": "bm90LWEtY3Vyc29y"},
        {"cursor": ""},
    ],
)
def test_a_bad_payments_query_is_a_validation_error(billing, query):
    with pytest.raises(ValidationError) as error:
        call(billing, "list_payments", **query)
    assert set(error.value.details) == set(query)
