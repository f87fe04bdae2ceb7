"""/v1/payments: a payment with its refunds, disputes and receipt; the list of
every payment, refunds and disputes for billing administrators.

Object-level access: with ``orders:read`` a user sees the payments of their own
orders; ``billing:admin`` sees every payment. Anyone else's payment answers 404
(not 403), so ids cannot be probed.
"""

from flask import Blueprint, jsonify

from gateway.api import created, json_body, query_args, rpc
from gateway.api.commerce import IDEMPOTENCY_HEADER, idempotency_key, uuid_or_404
from gateway.auth.guard import requires
from gateway.auth.principal import current_principal
from gateway.errors import ApiError
from gateway.openapi import operation
from services.billing.schemas import (
    DISPUTE_REQUEST,
    DISPUTE_RESOLUTION,
    IDEMPOTENCY_KEY,
    LIST_QUERY,
    PAYMENT,
    PAYMENT_PAGE,
    REFUND_REQUEST,
)
from services.chassis.schemas import UUID_PATTERN

bp = Blueprint("payments", __name__, url_prefix="/v1/payments")

PAYMENT_ID = {"payment_id": {"type": "string", "pattern": UUID_PATTERN}}
DISPUTE_IDS = {**PAYMENT_ID, "dispute_id": {"type": "string", "pattern": UUID_PATTERN}}
ADMIN_SCOPE = "billing:admin"
# refund_payment's reason when the request gives none.
DEFAULT_REFUND_REASON = "refunded by an administrator"

_PAYMENT_CREATED = {
    "schema": PAYMENT,
    "description": "Done: the payment as it is now",
    "headers": {
        "Location": {"schema": {"type": "string"}, "description": "The payment: /v1/payments/<id>"}
    },
}


def _location(payment_id):
    return f"/v1/payments/{payment_id}"


def _not_found():
    return ApiError(404, "not_found", "payment not found")


@bp.get("")
@operation(
    "Every payment, newest first, page by page (billing administrators)",
    description=(
        "All payments with their refunds, disputes and receipt, newest first, `limit` "
        "per page (20 by default, at most 100); `status` keeps one status. Follow "
        "`next_cursor` (null on the last page) with `?cursor=`; a cursor that was not "
        "issued here is a 400."
    ),
    tags=("payments",),
    query=LIST_QUERY,
    responses={200: PAYMENT_PAGE},
)
@requires(ADMIN_SCOPE)
def list_payments():
    query = query_args(LIST_QUERY)
    return jsonify(rpc().call("billing", "list_payments", **query))


@bp.get("/<payment_id>")
@operation(
    "One payment: of one of your orders, or any with billing:admin",
    description=(
        "The payment with its refunds, disputes and receipt. A user sees the payments "
        "of their own orders; a token with `billing:admin` sees every payment. Anyone "
        "else's answers 404."
    ),
    tags=("payments",),
    path_params=PAYMENT_ID,
    responses={200: PAYMENT},
    errors=(404,),
)
@requires("orders:read")
def get_payment(payment_id):
    payment_id = uuid_or_404(payment_id, "payment")
    principal = current_principal()
    payment = rpc().call("billing", "get_payment", payment_id)
    if ADMIN_SCOPE not in principal.scopes and (
        principal.user_id is None or payment.get("user_id") != principal.user_id
    ):
        raise _not_found()
    return jsonify(payment)


@bp.post("/<payment_id>/refunds")
@operation(
    "Refund a payment, wholly or in part",
    description=(
        "Without `amount`, refunds what remains of the payment. 409 when the payment "
        "has not succeeded or the amount is more than remains. An optional "
        f"`{IDEMPOTENCY_HEADER}` header (1-255 printable ASCII characters) makes a "
        "retry safe: the same key refunds once."
    ),
    tags=("payments",),
    path_params=PAYMENT_ID,
    headers={
        IDEMPOTENCY_HEADER: {
            "schema": IDEMPOTENCY_KEY,
            "required": False,
            "description": "Makes a retry safe: the same key refunds once",
        }
    },
    body=REFUND_REQUEST,
    responses={201: _PAYMENT_CREATED},
    errors=(404, 409),
)
@requires(ADMIN_SCOPE)
def refund_payment(payment_id):
    payment_id = uuid_or_404(payment_id, "payment")
    key = idempotency_key(IDEMPOTENCY_KEY, required=False)
    body = json_body(REFUND_REQUEST)
    payment = rpc().call(
        "billing",
        "refund_payment",
        payment_id,
        body.get("amount"),
        body.get("reason") or DEFAULT_REFUND_REASON,
        key,
    )
    return created(payment, _location(payment_id))


@bp.post("/<payment_id>/disputes")
@operation(
    "Open a dispute (chargeback) on a payment",
    description="Without `amount`, the whole payment is disputed. 409 when it cannot be.",
    tags=("payments",),
    path_params=PAYMENT_ID,
    body=DISPUTE_REQUEST,
    responses={201: _PAYMENT_CREATED},
    errors=(404, 409),
)
@requires(ADMIN_SCOPE)
def open_dispute(payment_id):
    payment_id = uuid_or_404(payment_id, "payment")
    body = json_body(DISPUTE_REQUEST)
    payment = rpc().call("billing", "open_dispute", payment_id, body["reason"], body.get("amount"))
    return created(payment, _location(payment_id))


@bp.post("/<payment_id>/disputes/<dispute_id>/resolution")
@operation(
    "Resolve an open dispute: won or lost",
    tags=("payments",),
    path_params=DISPUTE_IDS,
    body=DISPUTE_RESOLUTION,
    responses={200: PAYMENT},
    errors=(404, 409),
)
@requires(ADMIN_SCOPE)
def resolve_dispute(payment_id, dispute_id):
    payment_id = uuid_or_404(payment_id, "payment")
    dispute_id = uuid_or_404(dispute_id, "dispute")
    body = json_body(DISPUTE_RESOLUTION)
    return jsonify(
        rpc().call("billing", "resolve_dispute", payment_id, dispute_id, body["outcome"])
    )
