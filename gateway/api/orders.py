"""/v1/orders: place, list, view and cancel your own orders.

Orders belong to users: a token a client obtained for itself (client_credentials)
is refused with 403 ``user_required``. Someone else's order answers 404, like an
unknown one, so ids cannot be probed.

Placing an order is asynchronous (the saga reserves stock, then charges): the
answer is 202 with the order as it is now, usually ``pending``; follow
``Location``. The ``Idempotency-Key`` header is required: a retry with the same
key and body answers the same order (``Idempotent-Replayed: true``), the same key
with another body 409.
"""

import logging

from flask import Blueprint, jsonify

from gateway.api import json_body, query_args, rpc
from gateway.api.commerce import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    idempotency_key,
    user_id_or_403,
    uuid_or_404,
    without_user_id,
)
from gateway.auth.guard import requires
from gateway.auth.principal import current_principal
from gateway.openapi import operation
from gateway.rpc import ServiceUnavailable, UpstreamError
from services.billing.schemas import PAYMENT
from services.chassis.errors import AgoraError, NotFound
from services.chassis.schemas import UUID_PATTERN, obj
from services.inventory.schemas import RESERVATION
from services.orders.schemas import IDEMPOTENCY_KEY, LIST_QUERY, ORDER, ORDER_CREATE, ORDER_PAGE

log = logging.getLogger(__name__)

bp = Blueprint("orders", __name__, url_prefix="/v1/orders")

ORDER_ID = {"order_id": {"type": "string", "pattern": UUID_PATTERN}}
DEGRADED_HEADER = "Agora-Degraded"
# Callers with it also see the order's operator history (ignored events, notes).
OPERATOR_SCOPE = "ops:read"
# list_orders' arguments but the user id (the caller's): the query parameters.
ORDER_LIST_QUERY = without_user_id(LIST_QUERY)

# In the order view, a part whose service could not answer.
UNAVAILABLE = obj({"state": {"const": "unavailable"}}, required=("state",))
# GET /v1/orders/<id>: the order's own fields, plus its stock reservation and its
# payment (with the receipt): null when there is none (yet), {"state":
# "unavailable"} when inventory or billing cannot answer now.
ORDER_VIEW = {
    **ORDER,
    "properties": {
        **ORDER["properties"],
        "reservation": {"anyOf": [RESERVATION, {"type": "null"}, UNAVAILABLE]},
        "payment": {"anyOf": [PAYMENT, {"type": "null"}, UNAVAILABLE]},
    },
    "required": [*ORDER["required"], "reservation", "payment"],
}

_ORDER_LOCATION = {
    "Location": {"schema": {"type": "string"}, "description": "The order: /v1/orders/<id>"}
}


def _location(order):
    return f"/v1/orders/{order['id']}"


@bp.post("")
@operation(
    "Place an order (send an Idempotency-Key header)",
    description=(
        "Places an order for the caller; the saga then reserves the stock and charges "
        "the payment token. Answers 202 with the order as it is now (usually pending): "
        "follow Location for its progress.\n\n"
        "The `Idempotency-Key` request header is required (1-255 printable ASCII "
        "characters, e.g. a UUID; 400 without it). Retrying with the same key and the "
        "same body answers the same order, with `Idempotent-Replayed: true`; the same "
        "key with a different body is a 409. A token without a user "
        "(client_credentials) is refused with 403 `user_required`."
    ),
    tags=("orders",),
    headers={
        IDEMPOTENCY_HEADER: {
            "schema": IDEMPOTENCY_KEY,
            "required": True,
            "description": "A unique key per order, e.g. a UUID; a retry sends the same one",
        }
    },
    body=ORDER_CREATE,
    responses={
        202: {
            "schema": ORDER,
            "description": "Accepted: the order is being processed",
            "headers": {
                **_ORDER_LOCATION,
                REPLAYED_HEADER: {
                    "schema": {"const": "true"},
                    "required": False,
                    "description": "Present when this answers a retry of an earlier request "
                    f"with the same {IDEMPOTENCY_HEADER}",
                },
            },
        }
    },
    errors=(409,),
)
@requires("orders:write")
def create_order():
    user_id = user_id_or_403()
    key = idempotency_key(IDEMPOTENCY_KEY, required=True)
    payload = json_body(ORDER_CREATE)
    result = rpc().call("orders", "create_order", user_id, payload, key)
    order = result["order"]
    response = jsonify(order)
    response.status_code = 202
    response.headers["Location"] = _location(order)
    if not result["created"]:
        response.headers[REPLAYED_HEADER] = "true"
    return response


@bp.get("")
@operation(
    "Your orders, newest first, page by page",
    tags=("orders",),
    query=ORDER_LIST_QUERY,
    responses={200: ORDER_PAGE},
)
@requires("orders:read")
def list_orders():
    user_id = user_id_or_403()
    query = query_args(ORDER_LIST_QUERY)
    return jsonify(rpc().call("orders", "list_orders", user_id, **query))


def _optional_part(pending, service, method):
    """One part of the order view: the service's answer, None for NotFound, or
    UNAVAILABLE when the service cannot answer (down, slow, circuit open, failed)."""
    try:
        return pending.result()
    except NotFound:
        return None
    except (ServiceUnavailable, UpstreamError, AgoraError) as exc:
        log.warning("order view without %s.%s: %s", service, method, exc)
        return {"state": "unavailable"}


# The parts of the order view besides the order: (key, service, method).
_VIEW_PARTS = (
    ("reservation", "inventory", "get_reservation"),
    ("payment", "billing", "get_payment_for_order"),
)


@bp.get("/<order_id>")
@operation(
    "One of your orders, with its stock reservation and its payment",
    description=(
        "The order's fields, plus `reservation` (from inventory) and `payment` (from "
        "billing, with its receipt): each null while there is none. If inventory or "
        "billing cannot answer, the order is still returned (200) with that key set to "
        '`{"state": "unavailable"}` and the header `Agora-Degraded` naming the '
        "missing parts; the order itself is required (503 when orders cannot answer). "
        "An order rejected for want of stock (`reason` `out_of_stock`) lists in "
        "`shortages` each line that was short: its SKU and name, the quantity asked for "
        "and what was available.\n\n"
        "`history` holds one entry per status change, each with a `message` for the "
        'customer ("Order placed", "Payment received", "Cancelled: your card was '
        'declined"...) and its machine-readable `reason`; a cancelled order says why in '
        '`cancellation_reason` ("Your card was declined"). A token with `ops:read` also '
        "gets `operator_history`: every entry as recorded, events that did not apply "
        "included, with its technical `note` and `event_id`."
    ),
    tags=("orders",),
    path_params=ORDER_ID,
    responses={
        200: {
            "schema": ORDER_VIEW,
            "headers": {
                DEGRADED_HEADER: {
                    "schema": {"type": "string"},
                    "required": False,
                    "description": "Present when parts of the view are unavailable: their "
                    "names, comma-separated (reservation, payment)",
                }
            },
        }
    },
    errors=(404,),
)
@requires("orders:read")
def get_order(order_id):
    user_id = user_id_or_403()
    order_id = uuid_or_404(order_id, "order")
    client = rpc()
    # The three services answer independently: publish the three requests,
    # then wait for the answers. If the order itself fails (404, 503, 502) the
    # other two replies are dropped when they arrive.
    operator = OPERATOR_SCOPE in current_principal().scopes
    order_call = client.call_async("orders", "get_order", order_id, user_id, operator)
    parts = {
        name: (client.call_async(service, method, order_id), service, method)
        for name, service, method in _VIEW_PARTS
    }
    view = dict(order_call.result())
    for name, (pending, service, method) in parts.items():
        view[name] = _optional_part(pending, service, method)
    response = jsonify(view)
    degraded = [name for name, _, _ in _VIEW_PARTS if view[name] == {"state": "unavailable"}]
    if degraded:
        response.headers[DEGRADED_HEADER] = ", ".join(degraded)
    return response


@bp.post("/<order_id>/cancel")
@operation(
    "Cancel one of your orders",
    description=(
        "Cancels the order and starts its compensations: reserved stock is released, "
        "a payment is refunded. 409 `conflict` when the order can no longer be cancelled "
        "(rejected, expired or already cancelled); 409 `cancellation_window_closed` for a "
        "confirmed order whose cancellation window (`services.orders.cancellation_window` "
        "seconds after its confirmation, 30 minutes by default) has passed: a refund is "
        "then an administrator's action (`POST /v1/payments/{id}/refunds`)."
    ),
    tags=("orders",),
    path_params=ORDER_ID,
    responses={200: ORDER},
    errors=(404, 409),
)
@requires("orders:write")
def cancel_order(order_id):
    user_id = user_id_or_403()
    order_id = uuid_or_404(order_id, "order")
    return jsonify(rpc().call("orders", "cancel_order", order_id, user_id))
