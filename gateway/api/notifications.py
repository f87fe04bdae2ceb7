"""/v1/notifications: the messages (email, SMS) sent to you about your orders.

Reading them is part of your profile (``profile``); a token without a user
(client_credentials) has none and is refused with 403 ``user_required``.
"""

from flask import Blueprint, jsonify

from gateway.api import query_args, rpc
from gateway.api.commerce import user_id_or_403, without_user_id
from gateway.auth.guard import requires
from gateway.openapi import operation
from services.notifications.schemas import LIST_QUERY, NOTIFICATION_PAGE

bp = Blueprint("notifications", __name__, url_prefix="/v1/notifications")

# list_notifications' arguments but the user id (the caller's): the query parameters.
NOTIFICATION_LIST_QUERY = without_user_id(LIST_QUERY)


@bp.get("")
@operation(
    "Your notifications, newest first, page by page",
    tags=("notifications",),
    query=NOTIFICATION_LIST_QUERY,
    responses={200: NOTIFICATION_PAGE},
)
@requires("profile")
def list_notifications():
    user_id = user_id_or_403()
    query = query_args(NOTIFICATION_LIST_QUERY)
    return jsonify(rpc().call("notifications", "list_notifications", user_id, **query))
