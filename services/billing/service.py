"""The billing service: one charge per order, receipts, refunds and disputes.

Orders asks for a charge with ``orders.payment_requested``; billing answers
with ``payment_succeeded`` (and ``receipt_issued``) or ``payment_failed``. When
an order is cancelled or expires, billing refunds what remains of its payment,
or leaves a voided tombstone so that a payment request arriving later charges
nothing. Every step locks the order's payment row first, so redelivered and
concurrent events about one order never charge (or refund) twice.
"""

import logging
import uuid

from nameko.dependency_providers import Config

from services.billing import domain, models
from services.billing.models import Base, Dispute, Receipt, Refund
from services.billing.provider import PaymentProcessor
from services.billing.schemas import (
    DISPUTE_REQUEST,
    DISPUTE_RESOLUTION,
    EVENTS,
    LIST_QUERY,
    ORDER_CLOSED,
    PAYMENT_REQUESTED,
    REFUND_KEY,
    REFUND_REQUEST,
)
from services.chassis import cursors
from services.chassis.db import Database
from services.chassis.errors import Conflict, NotFound, Unavailable
from services.chassis.messaging import EventDispatcher, event_handler, rpc
from services.chassis.metrics import BILLING_CHARGES, children
from services.chassis.schemas import validate
from services.chassis.service import AgoraService, DeadLetterAdmin
from services.chassis.service_client import ServiceClient
from services.chassis.values import utcnow

log = logging.getLogger(__name__)

_charges = children(
    BILLING_CHARGES, "billing", known={*domain.CHARGE_OUTCOMES.values(), domain.charge_outcome("?")}
)

# refund_payment's reason when the caller gives none.
DEFAULT_REFUND_REASON = "refund"


def _present(**arguments):
    return {key: value for key, value in arguments.items() if value is not None}


class BillingService(DeadLetterAdmin, AgoraService):
    name = "billing"

    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)
    processor = PaymentProcessor()
    orders = ServiceClient("orders")
    config = Config()

    # --- RPC -----------------------------------------------------------------------

    @rpc
    def get_payment(self, payment_id):
        """One payment with its refunds, disputes and receipt; ``NotFound`` otherwise."""
        return self._view(self._payment(payment_id))

    @rpc
    def get_payment_for_order(self, order_id):
        """The payment of an order; ``NotFound`` if billing was never asked to charge it."""
        payment = models.find_payment_for_order(self.db.session, order_id)
        if payment is None or domain.is_tombstone(payment):
            raise NotFound("payment not found", {"order_id": str(order_id)})
        return self._view(payment)

    @rpc
    def list_payments(self, limit=domain.LIMIT_DEFAULT, cursor=None, status=None):
        """Every payment, newest first, ``limit`` per page (``PAYMENT_PAGE``);
        ``status`` filters. For billing administrators: the gateway checks the scope."""
        validate(LIST_QUERY, _present(limit=limit, cursor=cursor, status=status), "invalid query")
        limit = domain.LIMIT_DEFAULT if limit is None else limit
        settings = self.config["AGORA"]["services"]["billing"]
        listing = domain.listing_cursors(cursors.signing_key(settings["cursor_key"]))
        after = listing.decode(cursor) if cursor is not None else None
        session = self.db.session
        rows = models.payments_page(session, limit + 1, after, status)
        items, next_cursor = listing.page(rows, limit)
        parts = models.parts_of(session, [payment.id for payment in items])
        return {
            "items": [domain.payment_view(p, *parts[p.id]) for p in items],
            "next_cursor": next_cursor,
        }

    @rpc
    def refund_payment(self, payment_id, amount=None, reason=None, idempotency_key=None):
        """Refund ``amount`` (None: all that remains). Emits ``refund_issued``.

        The same ``idempotency_key`` again returns the payment without a second
        refund (Conflict if it comes with another amount or reason)."""
        validate(REFUND_REQUEST, _present(amount=amount, reason=reason), "invalid refund")
        validate(REFUND_KEY, _present(idempotency_key=idempotency_key), "invalid refund")
        reason = reason or DEFAULT_REFUND_REASON
        session = self.db.session
        payment = self._payment(payment_id, for_update=True)
        key = domain.client_refund_key(idempotency_key)
        if key is not None:
            earlier = models.refund_by_key(session, payment.id, key)
            if earlier is not None:
                if not domain.same_refund_request(payment, earlier, amount, reason):
                    raise Conflict(
                        "the idempotency key was used for another refund",
                        {"idempotency_key": "was used with another amount or reason"},
                    )
                return self._view(payment)
        disputes = models.disputes_of(session, payment.id)
        money = domain.refund_amount(payment, disputes, amount)
        refund_id = domain.refund_id_for(payment.id, key) if key else uuid.uuid4()
        # One attempt: the caller is waiting; a transient failure is a 503 to retry.
        self._refund(payment, money, reason, key, refund_id, attempts=1)
        return self._view(payment)

    @rpc
    def open_dispute(self, payment_id, reason, amount=None):
        """Open a dispute (None amount: all not refunded). Emits ``dispute_opened``."""
        validate(DISPUTE_REQUEST, _present(reason=reason, amount=amount), "invalid dispute")
        session = self.db.session
        payment = self._payment(payment_id, for_update=True)
        disputes = models.disputes_of(session, payment.id)
        money = domain.dispute_amount(payment, disputes, amount)
        dispute = Dispute(
            id=uuid.uuid4(),
            payment_id=payment.id,
            amount=money.amount,
            reason=reason,
            status=domain.DISPUTE_OPEN,
            created_at=utcnow(),
        )
        session.add(dispute)
        payment.updated_at = dispute.created_at
        session.flush()
        self.dispatch("dispute_opened", domain.dispute_opened_event(payment, dispute))
        return self._view(payment)

    @rpc
    def resolve_dispute(self, payment_id, dispute_id, outcome):
        """Close an open dispute as won or lost. Emits ``dispute_resolved``."""
        validate(DISPUTE_RESOLUTION, {"outcome": outcome}, "invalid resolution")
        session = self.db.session
        payment = self._payment(payment_id, for_update=True)
        dispute = models.find_dispute(session, payment.id, dispute_id)
        if dispute is None:
            raise NotFound("dispute not found", {"dispute_id": str(dispute_id)})
        domain.check_resolvable(dispute)
        dispute.status = outcome
        dispute.resolved_at = utcnow()
        payment.updated_at = dispute.resolved_at
        session.flush()
        self.dispatch("dispute_resolved", domain.dispute_resolved_event(payment, dispute))
        return self._view(payment)

    # --- events --------------------------------------------------------------------

    @event_handler("orders", "payment_requested")
    def on_payment_requested(self, event):
        """Charge the order once: retried transient failures, then succeeded or failed."""
        data = validate(PAYMENT_REQUESTED, event["data"], "invalid payment_requested")
        session = self.db.session
        now = utcnow()
        payment_id = domain.payment_id_for(data["order_id"])
        payment, _ = models.claim_payment(session, domain.new_payment(payment_id, data, now))
        if domain.is_tombstone(payment):
            # The order closed first: record what was asked, charge nothing.
            amount = domain.Money.from_dict(data["amount"])
            payment.amount, payment.currency = amount.amount, amount.currency
            payment.updated_at = now
            log.info("order %s closed before its payment request: not charged", data["order_id"])
            return
        if not domain.may_charge(payment):
            log.info(
                "order %s has a %s payment: not charged again", data["order_id"], payment.status
            )
            return
        if domain.past_deadline(data.get("deadline_at"), now):
            # A request that waited out its order's deadline (billing was down):
            # the order is expiring, so charging now would only mean a refund.
            payment.status = domain.VOIDED
            payment.updated_at = now
            log.info("order %s: payment request after its deadline, not charged", data["order_id"])
            return
        token = self._payment_token(data["order_id"])
        if token is None:
            # The order holds no token any more: it closed (cancelled, expired)
            # while the request waited. Nothing to charge; its close refunds nothing.
            payment.status = domain.VOIDED
            payment.updated_at = now
            log.info("order %s holds no payment token: not charged", data["order_id"])
            return
        amount = domain.charged(payment)
        outcome = self.processor.charge(amount, token, str(payment.id))
        payment.attempts = outcome.attempts
        payment.updated_at = utcnow()
        failure = None if outcome.ok else outcome.error.code
        self.db.on_commit(_charges(domain.charge_outcome(failure)).inc)
        if outcome.ok:
            payment.status = domain.SUCCEEDED
            payment.provider_charge_id = outcome.result.id
            receipt = self._issue_receipt(payment, data["items"])
            self.dispatch("payment_succeeded", domain.payment_succeeded_event(payment))
            self.dispatch("receipt_issued", domain.receipt_issued_event(payment, receipt))
        else:
            error = outcome.error
            payment.status = domain.FAILED
            payment.failure_code = error.code
            payment.failure_reason = domain.failure_reason(error.code, str(error), outcome.attempts)
            session.flush()
            self.dispatch("payment_failed", domain.payment_failed_event(payment))

    @event_handler("orders", "order_cancelled")
    def on_order_cancelled(self, event):
        self._close_order(event, domain.ORDER_CANCELLED)

    @event_handler("orders", "order_expired")
    def on_order_expired(self, event):
        self._close_order(event, domain.ORDER_EXPIRED)

    def _close_order(self, event, reason):
        """Refund what remains of a captured payment; a tombstone if there is none yet."""
        data = validate(ORDER_CLOSED, event["data"], f"invalid {reason}")
        session = self.db.session
        payment_id = domain.payment_id_for(data["order_id"])
        tombstone = domain.tombstone(payment_id, data["order_id"], data["user_id"], utcnow())
        payment, created = models.claim_payment(session, tombstone)
        if created:
            log.info("order %s closed (%s) before any payment: voided", data["order_id"], reason)
            return
        if payment.status == domain.PENDING:
            # Not reachable through committed states (a charge decides in its own
            # transaction), kept for safety: a pending payment never charges now.
            payment.status = domain.VOIDED
            payment.updated_at = utcnow()
            return
        remaining = domain.refundable(payment, models.disputes_of(session, payment.id))
        if remaining == 0:
            return
        key = domain.CLOSING_REFUND_KEY
        if models.refund_by_key(session, payment.id, key) is not None:
            return
        money = domain.Money(remaining, payment.currency)
        self._refund(payment, money, reason, key, domain.refund_id_for(payment.id, key))

    # --- helpers -------------------------------------------------------------------

    def _payment_token(self, order_id):
        """The order's payment token, read from orders (no event carries it); None
        when the order no longer holds one. Orders not answering is ``ServiceUnavailable``:
        the request is retried with backoff (then dead-lettered, without a token)."""
        try:
            answer = self.orders.get_payment_token(order_id)
        except (NotFound, Conflict) as exc:
            log.info("no payment token for order %s: %s", order_id, exc)
            return None
        token = answer.get("payment_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise Unavailable("orders answered without a payment token", {"dependency": "orders"})
        return token

    def _payment(self, payment_id, for_update=False):
        payment = models.find_payment(self.db.session, payment_id, for_update=for_update)
        if payment is None or domain.is_tombstone(payment):
            raise NotFound("payment not found", {"payment_id": str(payment_id)})
        return payment

    def _view(self, payment):
        session = self.db.session
        return domain.payment_view(
            payment,
            models.refunds_of(session, payment.id),
            models.disputes_of(session, payment.id),
            models.receipt_of(session, payment.id),
        )

    def _issue_receipt(self, payment, items):
        session = self.db.session
        issued_at = payment.updated_at
        receipt = Receipt(
            id=uuid.uuid4(),
            payment_id=payment.id,
            order_id=payment.order_id,
            number=domain.receipt_number(issued_at.year, models.next_receipt_seq(session)),
            body=domain.receipt_body(payment, items),
            issued_at=issued_at,
        )
        session.add(receipt)
        session.flush()
        return receipt

    def _refund(self, payment, money, reason, key, refund_id, attempts=None):
        """Refund ``money`` at the provider (idempotency key: the refund id), record it,
        update the payment and emit ``refund_issued``."""
        outcome = self.processor.refund(
            payment.provider_charge_id, money, str(refund_id), attempts=attempts
        )
        if not outcome.ok:
            error = outcome.error
            if error.transient:
                raise Unavailable(
                    "the payment provider did not answer, try again", {"provider": str(error)}
                )
            raise Conflict("the payment provider refused the refund", {"provider": str(error)})
        now = utcnow()
        refund = Refund(
            id=refund_id,
            payment_id=payment.id,
            amount=money.amount,
            reason=reason,
            idempotency_key=key,
            provider_refund_id=outcome.result.id,
            created_at=now,
        )
        self.db.session.add(refund)
        payment.refunded_amount += money.amount
        payment.status = domain.status_after_refund(payment)
        payment.updated_at = now
        self.db.session.flush()
        self.dispatch("refund_issued", domain.refund_issued_event(payment, refund))
        return refund
